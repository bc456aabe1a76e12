"""Where frames come from: webcams, network streams, video files, still images and a synthetic
scene.

Every source yields ``(H, W, 3)`` uint8 BGR frames from ``read()``, with ``None`` marking the
end of the stream, and is a context manager with an idempotent ``close()``. Pacing is the
pipeline's job; a webcam's ``read()`` simply blocks until the camera delivers.

    with open_source("0", width=1280, height=720) as src:
        frame = src.read()  # (720, 1280, 3) uint8 BGR
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from livedream.errors import SourceError
from livedream.media import DEFAULT_FPS, is_image_path
from livedream.sources.base import CLOSE_WAIT, Source
from livedream.sources.files import ImageSource, VideoFileSource
from livedream.sources.stream import StreamSource, is_stream_url
from livedream.sources.synthetic import SyntheticSource
from livedream.sources.webcam import CameraInfo, WebcamSource, list_cameras
from livedream.urls import STREAM_SCHEMES, mask_url, url_scheme

logger = logging.getLogger(__name__)

__all__ = [
    "CLOSE_WAIT",
    "CameraInfo",
    "ImageSource",
    "Source",
    "StreamSource",
    "SyntheticSource",
    "VideoFileSource",
    "WebcamSource",
    "is_stream_url",
    "list_cameras",
    "open_source",
]


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
    """Open what the user named: a webcam index or device path, a stream URL (``rtsp://``,
    ``http://`` ...), an image or a video file.

    Raises:
        SourceError: the input cannot be opened, with a one-line reason.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError(
            "no input given; expected a webcam index (0), a stream URL, a video file or an image"
        )
    scheme = url_scheme(spec)
    if scheme in STREAM_SCHEMES:
        if width or height:
            logger.warning(
                "--width/--height ask a webcam for a size; %s comes at the size it is sent",
                mask_url(spec),
            )
        return StreamSource(spec, fps=fps)
    if scheme is not None:
        raise SourceError(
            f"cannot open {mask_url(spec)}: {scheme}:// is not an input livedream reads; "
            f"expected {', '.join(s + '://' for s in STREAM_SCHEMES)}, a webcam or a file"
        )
    if spec.isdigit():
        return WebcamSource(int(spec), width=width, height=height, fps=fps)
    path = Path(spec).expanduser()
    if spec.startswith("/dev/video") or _is_char_device(path):
        # /dev/video2, or a stable name such as /dev/v4l/by-id/usb-...-video-index0
        return WebcamSource(spec, width=width, height=height, fps=fps)
    if is_image_path(path):
        return ImageSource(path, fps=fps or DEFAULT_FPS)
    return VideoFileSource(path)
