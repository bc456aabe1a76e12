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


class UnknownLayerError(LayerError):
    """A layer the model does not have; carries ``model``, ``layer`` and the ``valid`` ones."""

    def __init__(self, model: str, layer: str, valid: tuple[str, ...]) -> None:
        self.model, self.layer, self.valid = model, layer, valid
        super().__init__(f"model {model} has no layer {layer!r}: pick from {', '.join(valid)}")


class ChannelRangeError(LayerError):
    """A channel number beyond its layer's ``count``; carries ``model``, ``layer``, ``channel``."""

    def __init__(self, model: str, layer: str, count: int, channel: int) -> None:
        self.model, self.layer, self.count, self.channel = model, layer, count, channel
        super().__init__(
            f"layer {layer} of {model} has {count} channels, got channel {channel}: "
            f"pick channels from 0 to {count - 1}"
        )


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
    """The dream ran out of memory: ``size`` (w, h) or None, on the ``gpu`` or in host memory.

    The message says what happened; the CLI adds what to do (the flags are its words).
    """

    def __init__(self, size: tuple[int, int] | None = None, *, gpu: bool = False) -> None:
        self.size, self.gpu = size, gpu
        at = "" if size is None else f" dreaming at {size[0]}x{size[1]}"
        super().__init__(f"out of {'GPU ' if gpu else ''}memory{at}")


class FaceDetectorError(LivedreamError):
    """Face protection was asked for but this OpenCV has no face detector."""
