"""Where frames go: a preview window, a virtual camera, a video or image file, or nowhere.

Every sink takes ``(H, W, 3)`` uint8 BGR frames in ``write()`` and is a context manager with an
idempotent ``close()``. Files are written beside the target under a hidden temporary name and
renamed into place on ``close()``, so a crash never leaves a half-written file under the name
the user asked for.

    with VideoFileSink(Path("dream.mp4"), width=640, height=480, fps=30.0) as sink:
        sink.write(frame)  # (480, 640, 3) uint8 BGR
"""

from __future__ import annotations

import logging
import os
import platform
import re
import socket
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
import pyvirtualcam

from livedream.errors import DisplayError, OutputWriteError, SinkError, VirtualCameraError
from livedream.sources import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

Frame = np.ndarray[Any, np.dtype[np.uint8]]

# Container -> codec that this OpenCV build writes without extra libraries.
VIDEO_FOURCCS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}

KEY_NONE = -1  # PreviewWindow.show(): no key pressed
KEY_ESC = 27

LINUX_VCAM_HINT = (
    "load the loopback driver: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
    "card_label=livedream (Chrome and Zoom need exclusive_caps=1)"
)
OTHER_VCAM_HINT = "install OBS Studio and start its Virtual Camera once, then try again"


class Sink(ABC):
    """Something that takes ``(H, W, 3)`` uint8 BGR frames."""

    @property
    @abstractmethod
    def name(self) -> str:
        """What the sink is, for messages (``dream.mp4``, ``virtual camera /dev/video4``)."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Take one ``(H, W, 3)`` uint8 BGR frame."""

    @abstractmethod
    def close(self) -> None:
        """Finish and release everything. Safe to call twice."""

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


def _check_frame(frame: np.ndarray[Any, Any], expected: tuple[int, int, int] | None) -> None:
    if frame.dtype != np.uint8:
        raise TypeError(f"unexpected frame dtype: {frame.dtype} != uint8")
    if expected is None:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"unexpected frame shape: {frame.shape} != (H, W, 3)")
    elif frame.shape != expected:
        raise ValueError(f"unexpected frame shape: {frame.shape} != {expected}")


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

    def write(self, frame: Frame) -> None:
        """Count one ``(H, W, 3)`` uint8 BGR frame."""
        _check_frame(frame, None)
        self._frames += 1

    def close(self) -> None:
        """Nothing to release."""


def _check_target(path: Path, *, overwrite: bool, extensions: tuple[str, ...], kind: str) -> None:
    """Raise ``SinkError`` unless a file can be created at ``path``."""
    suffix = path.suffix.lower()
    if suffix not in extensions:
        raise SinkError(
            f"cannot write {path}: unknown {kind} format {suffix or '(no extension)'!r}; "
            f"expected one of {' '.join(extensions)}"
        )
    folder = path.parent
    if not folder.exists():
        # Walk up to the first missing part: a file in the way reads better than "missing".
        for parent in (folder, *folder.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise SinkError(
                        f"cannot write {path}: {parent} is a file, not a folder; "
                        "choose another output path"
                    )
                break
        raise SinkError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise SinkError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"cannot write {path}: folder {folder} is not writable; choose another")
    if path.is_dir():
        raise SinkError(f"cannot write {path}: it is a folder; give a file name")
    if path.exists() and not overwrite:
        raise SinkError(
            f"cannot write {path}: the file already exists; pass --overwrite to replace it "
            "or choose another name"
        )
    _probe_folder(path)


def _probe_folder(path: Path) -> None:
    """Creates and removes a hidden file beside ``path``: the only sure test of writing there.

    ``os.access`` says yes to root on a read-only file system, a full disk or a quota.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as e:
        raise SinkError(
            f"cannot write {path}: creating a file in {path.parent} failed ({e.strerror}); "
            "choose another folder"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Checks that a video or image file can be created at ``path``, before any work starts.

    Raises:
        SinkError: an unknown extension, a missing or read-only folder, or an existing file
            without ``overwrite``, with a one-line reason.
    """
    path = Path(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        _check_target(path, overwrite=overwrite, extensions=IMAGE_EXTENSIONS, kind="image")
    else:
        _check_target(path, overwrite=overwrite, extensions=tuple(VIDEO_FOURCCS), kind="video")


def _temp_path(path: Path) -> Path:
    # Hidden, beside the target (same file system, so the rename is atomic), and ending in the
    # target's extension so OpenCV picks the same container: .dream.mp4.partial.mp4
    return path.with_name(f".{path.name}.partial{path.suffix}")


def _publish(temp: Path, path: Path) -> None:
    try:
        os.replace(temp, path)
    except OSError as e:
        raise OutputWriteError(
            f"cannot move the finished {temp.name} to {path}: {e.strerror}; "
            f"the frames are kept in {temp}"
        ) from e


class VideoFileSink(Sink):
    """A video file, written under a hidden temporary name and renamed into place on ``close()``.

    The codec follows the extension: mp4v for .mp4/.mov/.mkv, MJPG for .avi. ``write()`` and
    ``close()`` may be called from different threads; ``write()`` after ``close()`` is ignored.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        overwrite: bool = False,
    ) -> None:
        self._path = Path(path)
        _check_target(
            self._path, overwrite=overwrite, extensions=tuple(VIDEO_FOURCCS), kind="video"
        )
        if width <= 0 or height <= 0 or not fps > 0:
            raise SinkError(
                f"cannot write {self._path}: size and fps must be above 0, got "
                f"{width}x{height} at {fps:g} fps"
            )
        if width % 2 or height % 2:
            logger.warning(
                "%s: odd frame size %dx%d; the encoder stores %dx%d",
                self._path,
                width,
                height,
                width - width % 2,
                height - height % 2,
            )
        self._shape = (height, width, 3)
        self._fps = float(fps)
        self._temp = _temp_path(self._path)
        fourcc = VIDEO_FOURCCS[self._path.suffix.lower()]
        self._writer = cv2.VideoWriter(
            str(self._temp), cv2.VideoWriter.fourcc(*fourcc), self._fps, (width, height)
        )
        if not self._writer.isOpened():
            self._temp.unlink(missing_ok=True)
            raise SinkError(
                f"cannot write {self._path}: OpenCV could not start a {fourcc!r} writer "
                f"for {width}x{height} at {fps:g} fps; try another extension (.avi)"
            )
        self._lock = threading.Lock()
        self._closed = False
        self._frames = 0
        logger.info(
            "writing %s (%dx%d, %.3g fps, %s) via %s",
            self._path,
            width,
            height,
            fps,
            fourcc,
            self._temp.name,
        )

    @property
    def name(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        """The file the video ends up in on ``close()``."""
        return self._path

    @property
    def temp_path(self) -> Path:
        """The hidden file written to until ``close()``."""
        return self._temp

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def write(self, frame: Frame) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame of the size given at construction.

        Raises:
            ValueError: the frame has another shape.
        """
        _check_frame(frame, self._shape)
        with self._lock:
            if self._closed:
                logger.debug("%s: frame after close() dropped", self._path)
                return
            self._writer.write(frame)
            self._frames += 1

    def close(self) -> None:
        """Finish the file and rename it into place; with no frame written, create nothing.

        Safe to call twice and from any thread.

        Raises:
            OutputWriteError: the finished file could not be renamed into place.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.release()
            if self._frames == 0:
                self._temp.unlink(missing_ok=True)
                logger.info("%s: no frame written, no file created", self._path)
                return
            _publish(self._temp, self._path)
            logger.info("wrote %s: %d frames", self._path, self._frames)


class ImageFileSink(Sink):
    """An image file holding the last frame written, created on ``close()`` (temp + rename)."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self._path = Path(path)
        _check_target(self._path, overwrite=overwrite, extensions=IMAGE_EXTENSIONS, kind="image")
        self._temp = _temp_path(self._path)
        self._lock = threading.Lock()
        self._closed = False
        self._last: Frame | None = None
        self._frames = 0

    @property
    def name(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        """The image file created on ``close()``."""
        return self._path

    @property
    def frames_written(self) -> int:
        """Frames taken so far (only the last one is saved)."""
        return self._frames

    def write(self, frame: Frame) -> None:
        """Keep one ``(H, W, 3)`` uint8 BGR frame as the picture to save."""
        _check_frame(frame, None)
        with self._lock:
            if self._closed:
                return
            self._last = frame.copy()
            self._frames += 1

    def close(self) -> None:
        """Save the last frame and rename it into place. Safe to call twice.

        Raises:
            OutputWriteError: the image could not be encoded or saved.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._last is None:
                return
            ok, data = cv2.imencode(self._path.suffix.lower(), self._last)
            if not ok:
                raise OutputWriteError(f"cannot encode {self._path}: OpenCV has no writer for it")
            try:
                self._temp.write_bytes(data.tobytes())
            except OSError as e:
                self._temp.unlink(missing_ok=True)
                raise OutputWriteError(f"cannot write {self._path}: {e.strerror}") from e
            _publish(self._temp, self._path)
            logger.info("wrote %s", self._path)


def _vcam_hint() -> str:
    return LINUX_VCAM_HINT if platform.system() == "Linux" else OTHER_VCAM_HINT


class VirtualCameraSink(Sink):
    """A virtual camera (v4l2loopback, OBS) that call apps can pick as a webcam.

    A named daemon thread sends the newest frame at ``fps`` and re-sends the last one when no new
    frame came, so call apps never freeze on a slow dream; before the first frame it sends black.
    ``write()`` only stores the frame and may be called from any thread. When sending fails
    mid-run the thread stops, ``failed`` becomes True and ``error`` says why; ``write()`` then
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
                f"({reasons or type(e).__name__}); {_vcam_hint()}"
            ) from e
        self._device = str(self._cam.device)
        self._backend = str(self._cam.backend)
        self._lock = threading.Lock()
        self._latest: Frame = np.zeros(self._shape, np.uint8)  # black until the first frame
        self._frames_sent = 0
        self._frames_written = 0
        self._failed = False
        self._error = ""
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
    def failed(self) -> bool:
        """True when sending failed mid-run and the camera stopped."""
        return self._failed

    @property
    def error(self) -> str:
        """Why it failed, one line; empty while it works."""
        return self._error

    def write(self, frame: Frame) -> None:
        """Make ``frame``, ``(H, W, 3)`` uint8 BGR, the picture the camera shows from now on.

        Raises:
            ValueError: the frame has another shape than the camera's.
        """
        _check_frame(frame, self._shape)
        if self._failed or self._done.is_set():
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
            self._error = f"{self.name} stopped: {e or type(e).__name__}"
            self._failed = True
            logger.warning("%s; preview and recording go on", self._error)
        finally:
            cam.close()

    def close(self) -> None:
        """Stop the sending thread and release the device. Safe to call twice, any thread."""
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=max(2.0, 3.0 / self._fps))
            if self._thread.is_alive():
                logger.warning("%s: sending thread did not stop in time", self.name)


# --- preview window ----------------------------------------------------------------------


def _gui_backend() -> str:
    """The GUI this OpenCV build has: ``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``, ``NONE``..."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1).upper() if match else "UNKNOWN"


def _x_server_reachable(display: str) -> bool:
    """True when something accepts connections at the X11 ``display`` (``:0``, ``host:10.0``).

    Qt aborts the whole process when it cannot reach the X server, so look before opening.
    """
    match = re.fullmatch(r"(?P<host>[^:]*):(?P<number>\d+)(?:\.\d+)?", display)
    if match is None:
        return False
    host, number = match["host"], int(match["number"])
    if host in ("", "unix") or host.endswith("/unix"):
        for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        if host == "unix":
            return False
        host = "localhost"
    try:
        with socket.create_connection((host, 6000 + number), timeout=1.0):
            return True
    except OSError:
        return False


def _no_display_reason() -> str | None:
    """Why no window can be shown here, or None when one can."""
    gui = _gui_backend()
    if gui == "NONE":
        return "this OpenCV build has no GUI (opencv-python-headless?)"
    if not sys.platform.startswith("linux"):
        return None
    x_display = os.environ.get("DISPLAY", "")
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if gui.startswith("QT") and os.environ.get("QT_QPA_PLATFORM", "xcb").startswith("xcb"):
        # This Qt talks X11 only (XWayland on a Wayland desktop sets DISPLAY).
        if not x_display:
            return "DISPLAY is not set"
        if not _x_server_reachable(x_display):
            return f"no X server answers on DISPLAY={x_display}"
        return None
    if x_display and _x_server_reachable(x_display):
        return None
    if wayland:
        return None
    if x_display:
        return f"no X server answers on DISPLAY={x_display}"
    return "neither DISPLAY nor WAYLAND_DISPLAY is set"


def has_display() -> bool:
    """True when a preview window can be opened here (without opening one)."""
    return _no_display_reason() is None


def check_display() -> None:
    """Raises ``DisplayError`` (pointing to the other outputs) when no window can be shown."""
    reason = _no_display_reason()
    if reason is not None:
        raise _display_error(reason)


def _display_error(reason: str) -> DisplayError:
    return DisplayError(
        f"cannot open a preview window: no display ({reason}); run with --no-preview and "
        "use --output FILE or --virtual-cam to see the dream"
    )


class PreviewWindow:
    """A resizable OpenCV window showing frames; main thread only.

    Raises:
        DisplayError: no display here (SSH, container, headless OpenCV).
    """

    def __init__(self, title: str = "livedream") -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("PreviewWindow must be created and used on the main thread")
        reason = _no_display_reason()
        if reason is not None:
            raise _display_error(reason)
        self._title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise _display_error(str(e).strip().splitlines()[-1]) from e
        self._closed = False
        self._seen_visible = False
        self._size: tuple[int, int] | None = None
        self._frames = 0

    @property
    def title(self) -> str:
        """The window title."""
        return self._title

    @property
    def frames_shown(self) -> int:
        """Frames shown so far."""
        return self._frames

    def is_open(self) -> bool:
        """False once the user closed the window (or ``close()`` was called)."""
        if self._closed:
            return False
        try:
            visible = cv2.getWindowProperty(self._title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            visible = False  # the window is gone
        if visible:
            self._seen_visible = True
            return True
        # Qt maps the window a few events after namedWindow: not yet visible is still open.
        return not self._seen_visible

    def show(self, frame: Frame) -> int:
        """Show one ``(H, W, 3)`` uint8 BGR frame and return the key pressed, or ``KEY_NONE``.

        Keys come masked to 8 bits (``ord("q")``, ``KEY_ESC``). Once the user closed the
        window nothing is shown (it does not pop up again) and ``KEY_NONE`` is returned.
        """
        _check_frame(frame, None)
        if not self.is_open():
            return KEY_NONE
        size = (int(frame.shape[1]), int(frame.shape[0]))
        if size != self._size:
            # A normal window does not follow the image size by itself.
            cv2.resizeWindow(self._title, *size)
            self._size = size
        cv2.imshow(self._title, frame)
        self._frames += 1
        key = int(cv2.waitKey(1))
        return KEY_NONE if key == -1 else key & 0xFF

    def close(self) -> None:
        """Destroy the window. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            cv2.destroyWindow(self._title)
            cv2.waitKey(1)  # let the GUI process the destroy event
        except cv2.error:
            pass  # already closed by the user

    def __enter__(self) -> PreviewWindow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def draw_hud(frame: Frame, lines: list[str]) -> Frame:
    """A copy of ``frame`` with ``lines`` in a semi-transparent box at the top left.

    Args:
        frame: ``(H, W, 3)`` uint8 BGR.
        lines: ASCII text, one entry per line (fps, latency, model...).

    Returns:
        A new ``(H, W, 3)`` uint8 BGR array; ``frame`` is not changed.
    """
    out = frame.copy()
    if not lines:
        return out
    h, w = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, min(1.0, h / 900))
    thickness = 1 if scale < 0.7 else 2
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_h = max(size[1] + baseline for size, baseline in sizes) + 4
    pad = max(6, int(10 * scale))
    box_w = min(w, max(size[0] for size, _ in sizes) + 3 * pad)  # text runs a bit wide
    box_h = min(h, line_h * len(lines) + 2 * pad)
    region = out[:box_h, :box_w]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # 60 % darker
    for i, line in enumerate(lines):
        y = pad + line_h * (i + 1) - sizes[i][1] - 2
        cv2.putText(out, line, (pad, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
