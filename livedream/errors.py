"""Errors a user can cause, each with a message that says what was expected, what was got and
what to do. The CLI prints them as one line on stderr and exits with ``exit_code``."""

from __future__ import annotations


class LivedreamError(Exception):
    """Base class: a problem the user can understand and fix (exit code 1)."""

    exit_code = 1


class UsageError(LivedreamError):
    """A bad flag, value or path given on the command line (exit code 2)."""

    exit_code = 2


class ModelError(UsageError):
    """An unknown model name or an unusable model setting."""


class LayerError(ModelError):
    """A layer name the chosen model does not have."""


class WeightsError(ModelError):
    """A weights file that is missing, unreadable or does not fit the model."""


class OfflineError(LivedreamError):
    """Weights could not be downloaded (the machine seems offline)."""


class DownloadError(LivedreamError):
    """Weights whose download was refused, broke off, or did not match the published hash."""


class SourceError(UsageError):
    """An input (webcam, video file, image) that cannot be opened or read."""


class SourceLostError(LivedreamError):
    """An input that stopped delivering frames mid-run (camera unplugged, file damaged)."""


class SinkError(UsageError):
    """An output that cannot be created (bad path, existing file, unknown format)."""


class OutputWriteError(LivedreamError):
    """An output that failed while being written or finalized (disk full, folder gone)."""


class DisplayError(UsageError):
    """A preview window was asked for where none can be shown."""


class VirtualCameraError(LivedreamError):
    """No virtual camera backend could be started, or one failed mid-run."""


class AcceleratorMemoryError(LivedreamError):
    """The accelerator ran out of memory at the chosen dream size."""


class FaceDetectorError(LivedreamError):
    """Face protection was asked for but this OpenCV has no face detector."""
