"""One module per CLI verb (see segviewer.cli)."""
