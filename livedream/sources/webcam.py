"""Webcams: a live camera by index or device path, and finding the cameras there are."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2

from livedream.errors import SourceError, SourceLostError
from livedream.media import DEFAULT_FPS, Frame, as_bgr
from livedream.sources.base import Source

logger = logging.getLogger(__name__)

# A camera that delivers nothing for this long is gone (unplugged, driver crash), not slow:
# even a 5 fps camera in a dark room delivers several frames in that time.
WEBCAM_LOST_AFTER_S = 2.0


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by ``list_cameras``: its index and what it reports at its default mode."""

    index: int
    width: int
    height: int
    fps: float
    backend: str


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (failed probes print several lines each)."""
    logging_api = cv2.utils.logging
    old = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_api.setLogLevel(old)


def _webcam_api() -> int:
    # V4L2 directly on Linux: the default order may pick GStreamer, which ignores MJPG.
    return int(cv2.CAP_V4L2) if sys.platform.startswith("linux") else int(cv2.CAP_ANY)


class WebcamSource(Source):
    """A live camera by index (``0``) or device path (``/dev/video2``).

    On Linux it asks for MJPG before the size, since most USB cameras deliver 720p at 30 fps
    only compressed, and for a one-frame buffer so each read is the newest picture.
    ``read()`` blocks until the camera delivers and raises ``SourceLostError`` when it stops
    for ``lost_after`` seconds. ``api`` picks the OpenCV capture backend (``cv2.CAP_V4L2`` on
    Linux, ``cv2.CAP_ANY`` elsewhere); any stream OpenCV opens as a capture works, which is
    how the tests play a camera that goes away: a video file through ``cv2.CAP_FFMPEG``.
    """

    is_live = True

    def __init__(
        self,
        device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        lost_after: float = WEBCAM_LOST_AFTER_S,
        api: int | None = None,
    ) -> None:
        super().__init__(f"webcam {device}")
        self._device = device
        self._lost_after = lost_after
        with quiet_opencv():
            cap = cv2.VideoCapture(device, _webcam_api() if api is None else api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.name}: {self._why_not_open()}")
        self._cap = cap
        try:
            self._configure(width=width, height=height, fps=fps)
            first = self._read_or_none()
            if first is None:
                raise SourceError(
                    f"{self.name} opened but delivered no frame in {lost_after:g} s; is another "
                    "app using it, or is it not a capture device? run `livedream --list-cameras`"
                )
        except BaseException:
            cap.release()
            raise
        self._pending: Frame | None = first
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        reported_fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = reported_fps if reported_fps > 0 else (fps or DEFAULT_FPS)
        if (width and width != self.width) or (height and height != self.height):
            logger.warning(
                "%s: asked for %sx%s, the camera gives %dx%d",
                self.name,
                width or "?",
                height or "?",
                self.width,
                self.height,
            )
        logger.info(
            "opened %s: %dx%d at %.3g fps (%s)",
            self.name,
            self.width,
            self.height,
            self.fps,
            cap.getBackendName(),
        )

    def _why_not_open(self) -> str:
        hint = "run `livedream --list-cameras` to see the cameras found"
        path: Path | None = None
        if isinstance(self._device, int):
            if sys.platform.startswith("linux"):
                path = Path(f"/dev/video{self._device}")
            else:
                return f"no such camera or it is in use; {hint}"
        else:
            path = Path(self._device)
        if not path.exists():
            return f"no such camera; {hint}"
        if not os.access(path, os.R_OK | os.W_OK):
            return (
                f"permission denied on {path}; add yourself to the 'video' group and log in again"
            )
        return f"it is busy or not a capture device (another app using it?); {hint}"

    def _configure(self, *, width: int | None, height: int | None, fps: float | None) -> None:
        cap = self._cap
        if sys.platform.startswith("linux"):
            # The pixel format must come before the size: V4L2 picks the sizes the current
            # format allows, and raw YUYV caps 720p at 5-10 fps on most USB cameras.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        # One buffered frame: a slow consumer gets the newest picture, not a stale queue.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _read_or_none(self) -> Frame | None:
        """Read until a frame comes or ``lost_after`` seconds of failures pass."""
        deadline = time.monotonic() + self._lost_after
        failures = 0
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                if failures:
                    logger.debug("%s: frame after %d failed reads", self.name, failures)
                return as_bgr(frame)
            failures += 1
            if time.monotonic() >= deadline:
                return None
            # A failing read often returns at once: do not spin, and stop waiting on close().
            if self._closing.wait(0.01):
                return None

    def _read(self) -> Frame | None:
        if self._pending is not None:
            first, self._pending = self._pending, None
            return first
        frame = self._read_or_none()
        if frame is None and self._closing.is_set():
            return None  # closed while waiting: the end of the stream, not a lost camera
        if frame is None:
            raise SourceLostError(
                f"{self.name} stopped delivering frames (unplugged?) for {self._lost_after:g} s; "
                "reconnect it and start again"
            )
        return frame

    def _release(self) -> None:
        self._cap.release()


def list_cameras(max_index: int = 10) -> list[CameraInfo]:
    """The cameras that open at indices ``0 .. max_index - 1``, probed without printing warnings."""
    found: list[CameraInfo] = []
    with quiet_opencv():
        for index in range(max_index):
            cap = cv2.VideoCapture(index, _webcam_api())
            try:
                if not cap.isOpened():
                    continue
                width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                if width <= 0 or height <= 0:
                    continue  # a metadata node of a UVC camera, not a picture source
                found.append(
                    CameraInfo(
                        index=index,
                        width=width,
                        height=height,
                        fps=float(cap.get(cv2.CAP_PROP_FPS)),
                        backend=cap.getBackendName(),
                    )
                )
            finally:
                cap.release()
    return found
