"""The ``Sink`` base class, and a sink that only counts (benchmarks, dry runs)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from livedream.media import Frame, check_frame


class Sink(ABC):
    """Something that takes ``(H, W, 3)`` uint8 BGR frames.

    Besides ``write()`` and ``close()``, a sink can tell the run two things: ``failure`` (it
    broke mid-run and takes no more frames; what that means for the run is decided in one
    place, ``livedream.outputs``) and ``wants_stop`` (the user closed the preview window).
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """What the sink is, for messages (``dream.mp4``, ``virtual camera /dev/video4``)."""

    @abstractmethod
    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Take one ``(H, W, 3)`` uint8 BGR frame.

        Args:
            frame: the picture.
            at: when it was captured, in ``time.perf_counter()`` seconds, or None. A live
                run's recording uses it to keep real time.
            pts: its time in the input file, in seconds, or None. A file render's recording
                keeps it (variable frame rates, the sound's sync).
        """

    @abstractmethod
    def close(self) -> None:
        """Finish and release everything. Safe to call twice."""

    @property
    def failure(self) -> str:
        """Why the sink stopped mid-run (one line), or empty while it works."""
        return ""

    @property
    def wants_stop(self) -> bool:
        """True once the user asked this sink to end the run (closed the preview window)."""
        return False

    def idle(self) -> None:  # noqa: B027 - most sinks have nothing to do while waiting
        """Called while the run waits for the next frame: a window stays responsive."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class NullSink(Sink):
    """Drops frames and counts them (benchmarks, dry runs)."""

    def __init__(self) -> None:
        self._frames = 0

    @property
    def name(self) -> str:
        return "null"

    @property
    def frames_written(self) -> int:
        """Frames taken so far."""
        return self._frames

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Count one ``(H, W, 3)`` uint8 BGR frame."""
        check_frame(frame)
        self._frames += 1

    def close(self) -> None:
        """Nothing to release."""
