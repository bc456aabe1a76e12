"""Files: a video file read frame by frame, and a still image shown as a stream."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from livedream.errors import SourceError
from livedream.media import DEFAULT_FPS, IMAGE_EXTENSIONS, Frame, as_bgr
from livedream.sources.base import Source

logger = logging.getLogger(__name__)

# Containers sometimes report a frame or two more than they hold; a stop that close to the
# reported count is a normal end, not damage.
FRAME_COUNT_TOLERANCE = 2


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


class VideoFileSource(Source):
    """A video file, read frame by frame; ``read()`` returns ``None`` at its end.

    When decoding stops well before the frame count the container reported, the file is
    damaged: ``damaged`` becomes True and ``damage_message`` says how many frames were read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path))
        self._path = Path(path)
        _check_file(self._path, kind="video")
        cap = cv2.VideoCapture(str(self._path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{self.name} is not a video OpenCV can read ({_describe_content(self._path)}); "
                "it may be damaged or incomplete; try playing it or converting it with ffmpeg"
            )
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(
                f"{self.name} opened but no frame could be decoded "
                f"({_describe_content(self._path)}); convert it with ffmpeg to H.264 .mp4"
            )
        self._cap = cap
        first = as_bgr(first)
        self._pending: Frame | None = first
        self._pending_position = self._timestamp()
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not fps > 0 or fps > 1000:
            logger.warning("%s: the file reports no frame rate (%r); assuming 25 fps", path, fps)
            fps = 25.0
        self.fps = fps
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._frames_read = 0
        self._ended = False
        self._damaged = False
        self._damage_message = ""

    @property
    def path(self) -> Path:
        """The file being read."""
        return self._path

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

    def _timestamp(self) -> float:
        """The time of the frame just decoded, in seconds: the file's own clock."""
        return max(0.0, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)

    def _read(self) -> Frame | None:
        if self._ended:
            return None
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self.position = self._pending_position
        else:
            ok, decoded = self._cap.read()
            if not ok or decoded is None:
                self._end()
                return None
            frame = as_bgr(decoded)
            self.position = self._timestamp()
        self._frames_read += 1
        return frame

    def _end(self) -> None:
        self._ended = True
        expected = self.frame_count
        if expected is not None and self._frames_read < expected - FRAME_COUNT_TOLERANCE:
            self._damaged = True
            n = self._frames_read
            self._damage_message = (
                f"{self.name}: decoding stopped at frame {n} of {expected} (file damaged?); "
                f"the {n} frames before it were kept"
            )

    def _release(self) -> None:
        self._cap.release()


class ImageSource(Source):
    """A still image shown as a stream.

    With ``repeat=True`` (the default) ``read()`` returns the still again and again, never
    ``None``, paced by the consumer at ``fps``. With ``repeat=False`` it is a one-frame stream:
    the still once, then ``None``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fps: float = DEFAULT_FPS, repeat: bool = True
    ) -> None:
        super().__init__(str(path))
        if fps <= 0:
            raise SourceError(f"fps for a still image must be above 0, got {fps:g}")
        self._path = Path(path)
        _check_file(self._path, kind="image")
        # imdecode from bytes: imread cannot open non-ASCII paths on Windows.
        data = np.fromfile(self._path, dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(
                f"{self.name} is not an image OpenCV can read ({_describe_content(self._path)}); "
                f"expected one of {' '.join(IMAGE_EXTENSIONS)}"
            )
        self._image: Frame = as_bgr(image)
        self._image.flags.writeable = False
        self.height, self.width = int(self._image.shape[0]), int(self._image.shape[1])
        self.fps = float(fps)
        self.frame_count = None if repeat else 1
        self._repeat = repeat
        self._given = False

    @property
    def image(self) -> Frame:
        """The still, ``(H, W, 3)`` uint8 BGR, read-only."""
        return self._image

    @property
    def path(self) -> Path:
        """The image file."""
        return self._path

    def _read(self) -> Frame | None:
        if not self._repeat and self._given:
            return None
        self._given = True
        return self._image.copy()  # a copy: consumers may draw on it in place
