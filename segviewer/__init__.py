"""segviewer: a desktop explorer for what segmentation and detection networks see."""

__version__ = "0.1.0"
