"""Errors a person sees: each carries one sentence that says what went wrong and what to do.

The UI shows ``str(err)`` in a dialog and the status bar; the CLI prints it and exits non-zero.
Anything that is not a :class:`SegviewerError` is a bug and is reported as such.
"""

from __future__ import annotations


class SegviewerError(Exception):
    """Base class for errors with a user-facing one-line message."""


class BadImageError(SegviewerError):
    """An input file is not an image we can show (unreadable, empty, truncated, too large)."""


class WeightsUnavailableError(SegviewerError):
    """A model's weights are neither given, cached nor downloadable."""


class CheckpointMismatchError(SegviewerError):
    """A checkpoint does not fit the architecture; the message names the first mismatched tensor."""


class BadDatasetError(SegviewerError):
    """A dataset item is missing, mis-sized or mislabelled; the message names the file."""


class ModelError(SegviewerError):
    """A model raised while loading or predicting."""
