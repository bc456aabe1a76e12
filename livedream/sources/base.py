"""The ``Source`` base class: a stream of frames with an idempotent, thread-safe ``close()``."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from types import TracebackType

from livedream.media import DEFAULT_FPS, Frame

CLOSE_WAIT = 0.5  # seconds close() waits for a read in progress: well inside a 2 s shutdown


class Source(ABC):
    """A stream of ``(H, W, 3)`` uint8 BGR frames.

    ``read()`` and ``close()`` may be called from different threads: ``close()`` waits up to
    ``CLOSE_WAIT`` seconds for a ``read()`` in progress (a read stuck in a driver then releases
    the device itself when it returns), and ``read()`` after ``close()`` returns ``None``.

    Attributes (set by the subclass while opening; only ``position`` changes afterwards, on
    every ``read()``):
        name: what the user called this source, for messages (``webcam 0``, ``clip.mp4``).
        width, height: frame size in pixels.
        fps: the camera's rate, the file's rate or the requested pace.
        frame_count: frames known in advance (a file), ``None`` for an endless stream.
        position: the time of the frame ``read()`` returned last, in seconds from the input
            file's start (a file's own timestamps); ``None`` for a camera.
        is_live: a camera or stream, whose frames come whether or not anyone waits: a run
            from it drops frames to stay live. A file or a photo can wait.
    """

    is_live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.width = 0
        self.height = 0
        self.fps = DEFAULT_FPS
        self.frame_count: int | None = None
        self.position: float | None = None  # the last frame's time in the input file, seconds
        self._lock = threading.Lock()
        self._closed = False
        # Set by close() before it waits for the lock, so a read that polls a slow device
        # (a camera going away) gives up at once instead of holding close() up.
        self._closing = threading.Event()

    @property
    def closed(self) -> bool:
        """True once the source was released (by ``close()``, or by the read it waited for)."""
        return self._closed

    @property
    def status(self) -> str:
        """What the source is busy with instead of delivering (``reconnecting (attempt 2, 7 s)``),
        for the status table; empty while frames flow. Any thread may read it."""
        return ""

    @property
    def damage_message(self) -> str:
        """One line for the user when the input turned out damaged mid-run, else empty."""
        return ""

    def read(self) -> Frame | None:
        """The next frame, ``(H, W, 3)`` uint8 BGR, or ``None`` at the end of the stream.

        Raises:
            SourceLostError: a live source stopped delivering frames.
        """
        with self._lock:
            if self._closed:
                return None
            try:
                frame = self._read()
            finally:
                if self._closing.is_set():  # close() gave up waiting for this read: finish it
                    self._closed = True
                    self._release()
            return None if self._closed else frame

    def close(self) -> None:
        """Release the device or file. Safe to call twice and from any thread.

        A ``read()`` in progress in another thread ends early (returning ``None``) first; one
        stuck in a driver for more than ``CLOSE_WAIT`` seconds releases the device when it
        returns, so closing never holds a shutdown up.
        """
        asked_before = self._closing.is_set()  # a stuck read was waited for once: not again
        self._closing.set()
        if not self._lock.acquire(timeout=0 if asked_before else CLOSE_WAIT):
            return
        try:
            if self._closed:
                return
            self._closed = True
            self._release()
        finally:
            self._lock.release()

    @abstractmethod
    def _read(self) -> Frame | None:
        """``read()`` without the lock and closed check."""

    def _release(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Free what the source holds; called once, under the lock."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.width}x{self.height} {self.fps:g} fps>"
