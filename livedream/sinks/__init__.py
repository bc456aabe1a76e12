"""Where frames go: a virtual camera, a video or image file, or nowhere; the preview window
(``livedream.preview``) is a sink too.

Every sink takes ``(H, W, 3)`` uint8 BGR frames in ``write()`` and is a context manager with an
idempotent ``close()``. Files are written beside the target under a hidden temporary name and
renamed into place on ``close()``, so a crash never leaves a half-written file under the name
the user asked for.

    with VideoFileSink(Path("dream.mp4"), width=640, height=480, fps=30.0) as sink:
        sink.write(frame)  # (480, 640, 3) uint8 BGR
"""

from livedream.sinks.base import NullSink, Sink
from livedream.sinks.files import ImageFileSink, VideoFileSink, check_output_path
from livedream.sinks.vcam import LINUX_VCAM_HINT, OTHER_VCAM_HINT, VirtualCameraSink, vcam_hint

__all__ = [
    "LINUX_VCAM_HINT",
    "OTHER_VCAM_HINT",
    "ImageFileSink",
    "NullSink",
    "Sink",
    "VideoFileSink",
    "VirtualCameraSink",
    "check_output_path",
    "vcam_hint",
]
