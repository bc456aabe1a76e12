"""A virtual camera (v4l2loopback, OBS) that call apps can pick as a webcam."""

from __future__ import annotations

import logging
import platform
import threading

import numpy as np
import pyvirtualcam

from livedream.errors import VirtualCameraError
from livedream.media import Frame, check_frame
from livedream.sinks.base import Sink

logger = logging.getLogger(__name__)

LINUX_VCAM_HINT = (
    "load the loopback driver: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
    "card_label=livedream (Chrome and Zoom need exclusive_caps=1)"
)
OTHER_VCAM_HINT = "install OBS Studio and start its Virtual Camera once, then try again"


def vcam_hint() -> str:
    """How to make a virtual camera available on this OS, one line."""
    return LINUX_VCAM_HINT if platform.system() == "Linux" else OTHER_VCAM_HINT


class VirtualCameraSink(Sink):
    """A virtual camera (v4l2loopback, OBS) that call apps can pick as a webcam.

    A named daemon thread sends the newest frame at ``fps`` and re-sends the last one when no new
    frame came, so call apps never freeze on a slow dream; before the first frame it sends black.
    ``write()`` only stores the frame and may be called from any thread. When sending fails
    mid-run the thread stops and ``failure`` says why; ``write()`` then
    keeps working (frames are dropped) so preview and recording go on.
    """

    def __init__(
        self,
        *,
        width: int,
        height: int,
        fps: float,
        device: str | None = None,
        backend: str | None = None,
    ) -> None:
        if width <= 0 or height <= 0 or not fps > 0:
            raise VirtualCameraError(
                f"virtual camera size and fps must be above 0, got {width}x{height} at {fps:g} fps"
            )
        known = sorted(pyvirtualcam.camera.BACKENDS)
        if backend is not None and backend not in known:
            raise VirtualCameraError(
                f"unknown virtual camera backend {backend!r}; expected one of: "
                f"{' '.join(known) or 'none on this system'}"
            )
        self._shape = (height, width, 3)
        self._fps = float(fps)
        try:
            self._cam = pyvirtualcam.Camera(
                width,
                height,
                self._fps,
                fmt=pyvirtualcam.PixelFormat.BGR,
                device=device,
                backend=backend,
            )
        except Exception as e:
            # pyvirtualcam tries each backend and joins their reasons with newlines.
            reasons = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
            raise VirtualCameraError(
                f"cannot start a virtual camera{f' on {device}' if device else ''} "
                f"({reasons or type(e).__name__}); {vcam_hint()}"
            ) from e
        self._device = str(self._cam.device)
        self._backend = str(self._cam.backend)
        self._lock = threading.Lock()
        self._latest: Frame = np.zeros(self._shape, np.uint8)  # black until the first frame
        self._frames_sent = 0
        self._frames_written = 0
        self._failure = ""  # why sending stopped mid-run; set once, by the sending thread
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="livedream-virtual-camera", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:
            self._cam.close()
            raise
        logger.info(
            "virtual camera %s (%s backend): %dx%d at %.3g fps",
            self._device,
            self._backend,
            width,
            height,
            fps,
        )

    @property
    def name(self) -> str:
        return f"virtual camera {self._device}"

    @property
    def device(self) -> str:
        """The device apps see (``/dev/video4``, ``OBS Virtual Camera``)."""
        return self._device

    @property
    def backend(self) -> str:
        """The pyvirtualcam backend in use."""
        return self._backend

    @property
    def frames_sent(self) -> int:
        """Frames sent to the device, re-sends of a held frame included."""
        return self._frames_sent

    @property
    def frames_written(self) -> int:
        """Frames given to ``write()``."""
        return self._frames_written

    @property
    def failure(self) -> str:
        """Why sending stopped mid-run, one line; empty while it works."""
        return self._failure

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Make ``frame``, ``(H, W, 3)`` uint8 BGR, the picture the camera shows from now on.

        Raises:
            ValueError: the frame has another shape than the camera's.
        """
        check_frame(frame, self._shape)
        if self._failure or self._done.is_set():
            return
        copy = frame.copy()  # the caller may reuse or draw on its array
        with self._lock:
            self._latest = copy
            self._frames_written += 1

    def _run(self) -> None:
        cam = self._cam
        try:
            while not self._done.is_set():
                with self._lock:
                    frame = self._latest
                cam.send(frame)
                self._frames_sent += 1
                cam.sleep_until_next_frame()
        except Exception as e:
            self._failure = f"{self.name} stopped: {e or type(e).__name__}"
            logger.warning("%s; preview and recording go on", self._failure)
        finally:
            cam.close()

    def close(self) -> None:
        """Stop the sending thread and release the device. Safe to call twice, any thread."""
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=max(2.0, 3.0 / self._fps))
            if self._thread.is_alive():
                logger.warning("%s: sending thread did not stop in time", self.name)
