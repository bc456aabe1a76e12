"""Where frames come from: webcams, video files, still images and a synthetic scene.

Every source yields ``(H, W, 3)`` uint8 BGR frames from ``read()``, with ``None`` marking the
end of the stream, and is a context manager with an idempotent ``close()``. Pacing live sources
is the pipeline's job; a webcam's ``read()`` simply blocks until the camera delivers.

    with open_source("0", width=1280, height=720) as src:
        frame = src.read()  # (720, 1280, 3) uint8 BGR
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from livedream.errors import SourceError, SourceLostError

logger = logging.getLogger(__name__)

Frame = np.ndarray[Any, np.dtype[np.uint8]]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# A camera that delivers nothing for this long is gone (unplugged, driver crash), not slow:
# even a 5 fps camera in a dark room delivers several frames in that time.
WEBCAM_LOST_AFTER_S = 2.0
# Containers sometimes report a frame or two more than they hold; a stop that close to the
# reported count is a normal end, not damage.
FRAME_COUNT_TOLERANCE = 2


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by ``list_cameras``: its index and what it reports at its default mode."""

    index: int
    width: int
    height: int
    fps: float
    backend: str


CLOSE_WAIT = 0.5  # seconds close() waits for a read in progress: well inside a 2 s shutdown


class Source(ABC):
    """A stream of ``(H, W, 3)`` uint8 BGR frames.

    ``read()`` and ``close()`` may be called from different threads: ``close()`` waits up to
    ``CLOSE_WAIT`` seconds for a ``read()`` in progress (a read stuck in a driver then releases
    the device itself when it returns), and ``read()`` after ``close()`` returns ``None``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        # Set by close() before it waits for the lock, so a read that polls a slow device
        # (a camera going away) gives up at once instead of holding close() up.
        self._closing = threading.Event()

    @property
    @abstractmethod
    def width(self) -> int:
        """Frame width in pixels."""

    @property
    @abstractmethod
    def height(self) -> int:
        """Frame height in pixels."""

    @property
    @abstractmethod
    def fps(self) -> float:
        """Frames per second: the camera's rate, the file's rate or the requested pace."""

    @property
    @abstractmethod
    def frame_count(self) -> int | None:
        """Number of frames when known in advance (a file), ``None`` for an endless stream."""

    @property
    @abstractmethod
    def is_live(self) -> bool:
        """True when frames should be shown as they come, newest first (webcam, still)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """What the user called this source, for messages (``webcam 0``, ``clip.mp4``)."""

    @property
    def closed(self) -> bool:
        """True once the source was released (by ``close()``, or by the read it waited for)."""
        return self._closed

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


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
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


def _as_bgr(frame: np.ndarray[Any, Any]) -> Frame:
    """Any decoded frame as ``(H, W, 3)`` uint8 BGR (some cameras and files give grey or BGRA)."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.dtype == np.uint16:  # 16-bit PNG/TIFF stills
        frame = (frame // 257).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame


def _human_size(size: int) -> str:
    if size < 10_000:
        return f"{size} bytes"
    if size < 10_000_000:
        return f"{size / 1e3:.0f} kB"
    return f"{size / 1e6:.0f} MB"


def _describe_content(path: Path) -> str:
    """A short guess at what a file holds, for messages: ``got 312 bytes of text?``."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(512)
    magic = (
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    )
    what = ""
    for prefix, kind in magic:
        if head.startswith(prefix):
            what = kind
    if head[4:8] == b"ftyp":
        what = "an MP4/MOV video"
    elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        what = "an AVI video"
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        what = "a WebP image"
    if what:
        return f"got {_human_size(size)} that look like {what}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c in "\r\n\t" for c in text.rstrip("\x00")):
        return f"got {_human_size(size)} of text?"
    return f"got {_human_size(size)} of unknown data"


def _check_file(path: Path, *, kind: str) -> None:
    """Raise ``SourceError`` unless ``path`` is a readable, non-empty file."""
    if not path.exists():
        raise SourceError(f"cannot open {kind} {path}: no such file; check the path and spelling")
    if path.is_dir():
        raise SourceError(f"cannot open {kind} {path}: it is a folder, expected a {kind} file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot open {kind} {path}: permission denied; make the file readable")
    if path.stat().st_size == 0:
        raise SourceError(
            f"cannot open {kind} {path}: the file is empty (0 bytes); was it copied completely?"
        )


class WebcamSource(Source):
    """A live camera by index (``0``) or device path (``/dev/video2``).

    On Linux it asks for MJPG before the size, since most USB cameras deliver 720p at 30 fps
    only compressed, and for a one-frame buffer so each read is the newest picture.
    ``read()`` blocks until the camera delivers and raises ``SourceLostError`` when it stops
    for ``lost_after`` seconds. ``api`` picks the OpenCV capture backend (``cv2.CAP_V4L2`` on
    Linux, ``cv2.CAP_ANY`` elsewhere); any stream OpenCV opens as a capture works, which is
    how the tests play a camera that goes away: a video file through ``cv2.CAP_FFMPEG``.
    """

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
        super().__init__()
        self._device = device
        self._name = f"webcam {device}"
        self._lost_after = lost_after
        with _quiet_opencv():
            cap = cv2.VideoCapture(device, _webcam_api() if api is None else api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self._name}: {self._why_not_open()}")
        self._cap = cap
        try:
            self._configure(width=width, height=height, fps=fps)
            first = self._read_or_none()
            if first is None:
                raise SourceError(
                    f"{self._name} opened but delivered no frame in {lost_after:g} s; is another "
                    "app using it, or is it not a capture device? run `livedream --list-cameras`"
                )
        except BaseException:
            cap.release()
            raise
        self._pending: Frame | None = first
        self._height, self._width = int(first.shape[0]), int(first.shape[1])
        reported_fps = float(cap.get(cv2.CAP_PROP_FPS))
        self._fps = reported_fps if reported_fps > 0 else (fps or 30.0)
        if (width and width != self._width) or (height and height != self._height):
            logger.warning(
                "%s: asked for %sx%s, the camera gives %dx%d",
                self._name,
                width or "?",
                height or "?",
                self._width,
                self._height,
            )
        logger.info(
            "opened %s: %dx%d at %.3g fps (%s)",
            self._name,
            self._width,
            self._height,
            self._fps,
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
                    logger.debug("%s: frame after %d failed reads", self._name, failures)
                return _as_bgr(frame)
            failures += 1
            if time.monotonic() >= deadline:
                return None
            # A failing read often returns at once: do not spin, and stop waiting on close().
            if self._closing.wait(0.01):
                return None

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        return None

    @property
    def is_live(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self._name

    def _read(self) -> Frame | None:
        if self._pending is not None:
            first, self._pending = self._pending, None
            return first
        frame = self._read_or_none()
        if frame is None and self._closing.is_set():
            return None  # closed while waiting: the end of the stream, not a lost camera
        if frame is None:
            raise SourceLostError(
                f"{self._name} stopped delivering frames (unplugged?) for {self._lost_after:g} s; "
                "reconnect it and start again"
            )
        return frame

    def _release(self) -> None:
        self._cap.release()


class VideoFileSource(Source):
    """A video file, read frame by frame; ``read()`` returns ``None`` at its end.

    When decoding stops well before the frame count the container reported, the file is
    damaged: ``damaged`` becomes True and ``damage_message`` says how many frames were read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = Path(path)
        self._name = str(path)
        _check_file(self._path, kind="video")
        cap = cv2.VideoCapture(str(self._path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{self._name} is not a video OpenCV can read ({_describe_content(self._path)}); "
                "it may be damaged or incomplete; try playing it or converting it with ffmpeg"
            )
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(
                f"{self._name} opened but no frame could be decoded "
                f"({_describe_content(self._path)}); convert it with ffmpeg to H.264 .mp4"
            )
        self._cap = cap
        first = _as_bgr(first)
        self._pending: Frame | None = first
        self._height, self._width = int(first.shape[0]), int(first.shape[1])
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not fps > 0 or fps > 1000:
            logger.warning("%s: the file reports no frame rate (%r); assuming 25 fps", path, fps)
            fps = 25.0
        self._fps = fps
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._frame_count: int | None = count if count > 0 else None
        self._frames_read = 0
        self._ended = False
        self._damaged = False
        self._damage_message = ""

    @property
    def path(self) -> Path:
        """The file being read."""
        return self._path

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        return self._frame_count

    @property
    def is_live(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return self._name

    @property
    def frames_read(self) -> int:
        """Frames returned by ``read()`` so far."""
        return self._frames_read

    @property
    def damaged(self) -> bool:
        """True when decoding stopped well before the reported frame count."""
        return self._damaged

    @property
    def damage_message(self) -> str:
        """One line for the user when ``damaged``, else empty."""
        return self._damage_message

    def _read(self) -> Frame | None:
        if self._ended:
            return None
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, decoded = self._cap.read()
            if not ok or decoded is None:
                self._end()
                return None
            frame = _as_bgr(decoded)
        self._frames_read += 1
        return frame

    def _end(self) -> None:
        self._ended = True
        expected = self._frame_count
        if expected is not None and self._frames_read < expected - FRAME_COUNT_TOLERANCE:
            self._damaged = True
            n = self._frames_read
            self._damage_message = (
                f"{self._name}: decoding stopped at frame {n} of {expected} (file damaged?); "
                f"the {n} frames before it were kept"
            )

    def _release(self) -> None:
        self._cap.release()


class ImageSource(Source):
    """A still image shown as a stream.

    With ``live=True`` (the default) ``read()`` returns the still again and again, never
    ``None``, paced by the consumer at ``fps``. With ``live=False`` it is a one-frame stream:
    the still once, then ``None``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fps: float = 30.0, live: bool = True
    ) -> None:
        super().__init__()
        if fps <= 0:
            raise SourceError(f"fps for a still image must be above 0, got {fps:g}")
        self._path = Path(path)
        self._name = str(path)
        _check_file(self._path, kind="image")
        # imdecode from bytes: imread cannot open non-ASCII paths on Windows.
        data = np.fromfile(self._path, dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(
                f"{self._name} is not an image OpenCV can read ({_describe_content(self._path)}); "
                f"expected one of {' '.join(IMAGE_EXTENSIONS)}"
            )
        self._image: Frame = _as_bgr(image)
        self._image.flags.writeable = False
        self._fps = float(fps)
        self._live = live
        self._given = False

    @property
    def image(self) -> Frame:
        """The still, ``(H, W, 3)`` uint8 BGR, read-only."""
        return self._image

    @property
    def path(self) -> Path:
        """The image file."""
        return self._path

    @property
    def width(self) -> int:
        return int(self._image.shape[1])

    @property
    def height(self) -> int:
        return int(self._image.shape[0])

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        return None if self._live else 1

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def name(self) -> str:
        return self._name

    def _read(self) -> Frame | None:
        if not self._live and self._given:
            return None
        self._given = True
        return self._image.copy()  # a copy: consumers may draw on it in place


class SyntheticSource(Source):
    """A moving synthetic scene for tests, benchmarks and soak runs.

    A colour gradient with a few shapes that move a few pixels per frame; frame ``i`` is the
    same on every run (``frame_at(i)``). Ends after ``frames`` frames when given.
    """

    def __init__(
        self,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30.0,
        frames: int | None = None,
        live: bool = True,
    ) -> None:
        super().__init__()
        if width < 16 or height < 16:
            raise SourceError(f"synthetic source size must be at least 16x16, got {width}x{height}")
        self._width = width
        self._height = height
        self._fps = float(fps)
        self._frames = frames
        self._live = live
        self._index = 0
        ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        background = np.empty((height, width, 3), np.float32)  # (H, W, 3) float32 BGR in [0, 1]
        background[..., 0] = 0.25 + 0.5 * xs
        background[..., 1] = 0.2 + 0.4 * ys
        background[..., 2] = 0.7 - 0.4 * xs * ys
        # A fine checker texture gives optical flow and the dream something to hold on to.
        checker = ((np.arange(height)[:, None] // 8 + np.arange(width)[None, :] // 8) % 2) * 0.06
        background += checker[..., None].astype(np.float32)
        self._background: Frame = np.clip(background * 255.0, 0, 255).astype(np.uint8)

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count(self) -> int | None:
        return self._frames

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def name(self) -> str:
        return "synthetic"

    def frame_at(self, index: int) -> Frame:
        """Frame number ``index`` of the scene, ``(H, W, 3)`` uint8 BGR."""
        w, h = self._width, self._height
        frame = self._background.copy()
        s = min(w, h)
        # A disc moving left to right and back, 3 px per frame.
        span = max(1, w - s // 2)
        x = abs((index * 3) % (2 * span) - span) + s // 4
        cv2.circle(frame, (x % w, h // 3), s // 6, (40, 200, 250), -1, cv2.LINE_AA)
        # A square drifting down, 2 px per frame.
        y = (index * 2) % (h + s // 4) - s // 8
        x0 = w // 2
        cv2.rectangle(frame, (x0, y), (x0 + s // 5, y + s // 5), (200, 60, 40), -1)
        # A bar rotating about the centre, 2 degrees per frame.
        angle = np.deg2rad(index * 2.0)
        cx, cy, r = w // 2, 2 * h // 3, s // 4
        dx, dy = int(r * np.cos(angle)), int(r * np.sin(angle))
        cv2.line(frame, (cx - dx, cy - dy), (cx + dx, cy + dy), (30, 30, 30), max(2, s // 40))
        return frame

    def _read(self) -> Frame | None:
        if self._frames is not None and self._index >= self._frames:
            return None
        frame = self.frame_at(self._index)
        self._index += 1
        return frame


def _is_char_device(path: Path) -> bool:
    try:
        return stat.S_ISCHR(path.stat().st_mode)
    except OSError:
        return False


def open_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
) -> Source:
    """Open what the user named: a webcam index or device path, an image or a video file.

    Raises:
        SourceError: the input cannot be opened, with a one-line reason.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("no input given; expected a webcam index (0), a video file or an image")
    if spec.isdigit():
        return WebcamSource(int(spec), width=width, height=height, fps=fps)
    path = Path(spec).expanduser()
    if spec.startswith("/dev/video") or _is_char_device(path):
        # /dev/video2, or a stable name such as /dev/v4l/by-id/usb-...-video-index0
        return WebcamSource(spec, width=width, height=height, fps=fps)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource(path, fps=fps or 30.0)
    return VideoFileSource(path)


def list_cameras(max_index: int = 10) -> list[CameraInfo]:
    """The cameras that open at indices ``0 .. max_index - 1``, probed without printing warnings."""
    found: list[CameraInfo] = []
    with _quiet_opencv():
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
