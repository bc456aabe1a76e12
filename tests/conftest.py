"""Shared fixtures: sample media, small videos written on the spot, a fake virtual camera
backend for pyvirtualcam, and a real X server (Xvfb) with screen grabs and key presses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pyvirtualcam
from pyvirtualcam import camera as pyvirtualcam_camera

MEDIA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media"
FAKE_BACKEND = "livedream-test"
# CLI flags for a dream that is real (vgg16_hed weights) but small enough for quick tests.
FAST = ["--dream-size", "64x48", "--layers", "block2_conv2", "--precision", "float32"]


# --- a real livedream process -------------------------------------------------------------


class LivedreamProcess:
    """A real ``python -m livedream ARGS`` process whose stderr a thread collects in ``err``."""

    def __init__(self, args: list[str], *, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livedream", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err += line

    def wait(self, timeout: float = 20.0) -> int:
        """The exit code, once the process ended within ``timeout`` seconds."""
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        """Kills the process if it still runs. Idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


# --- media -------------------------------------------------------------------------------


@pytest.fixture
def media_dir() -> Path:
    """The shared sample clips (bikes.mp4, bigbuckbunny.mp4); skips when the folder is absent."""
    if not MEDIA_DIR.is_dir():
        pytest.skip(f"sample media not found at {MEDIA_DIR}")
    return MEDIA_DIR


def make_numbered_frame(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose colour and printed number encode ``index``: ``(H, W, 3)`` uint8 BGR."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:] = ((index * 7) % 256, (index * 13) % 256, 128)
    cv2.putText(frame, str(index), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255,) * 3, 2)
    return frame


@pytest.fixture
def numbered_frame() -> Callable[[int, int, int], np.ndarray]:
    """``(index, width, height) -> frame``: a frame whose colour encodes its index."""
    return make_numbered_frame


WriteVideo = Callable[..., Path]


@pytest.fixture
def write_video() -> WriteVideo:
    """A function ``(path, *, frames=30, width=160, height=120, fps=25.0) -> path`` that writes
    a small video of numbered frames with cv2.VideoWriter (MJPG for .avi, mp4v otherwise)."""

    def write(
        path: Path, *, frames: int = 30, width: int = 160, height: int = 120, fps: float = 25.0
    ) -> Path:
        fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
        assert writer.isOpened(), f"cannot write test video {path}"
        for i in range(frames):
            writer.write(make_numbered_frame(i, width, height))
        writer.release()
        return path

    return write


# --- virtual camera ----------------------------------------------------------------------


@dataclass
class FakeCameraLog:
    """What the fake virtual camera backend received, shared by all its instances."""

    frames: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8, as sent
    opened: int = 0
    closed: int = 0
    fail_open: str | None = None  # message to raise in __init__
    fail_after: int | None = None  # raise in send() once this many frames were received
    shape: tuple[int, int, int] = (0, 0, 3)


@pytest.fixture
def fake_vcam() -> Iterator[FakeCameraLog]:
    """Registers a pyvirtualcam backend named ``livedream-test`` that records every frame.

    Set ``fail_open`` or ``fail_after`` on the returned log to make the backend fail.
    """
    log = FakeCameraLog()

    class FakeBackend(pyvirtualcam_camera.Backend):
        def __init__(
            self,
            *,
            width: int,
            height: int,
            fps: float,
            fourcc: int,
            device: str | None,
            **kw: Any,
        ) -> None:
            if log.fail_open is not None:
                raise RuntimeError(log.fail_open)
            assert fourcc == pyvirtualcam_camera.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)
            self._device = device or "/dev/video-fake"
            log.shape = (height, width, 3)
            log.opened += 1

        def close(self) -> None:
            log.closed += 1

        def send(self, frame: np.ndarray) -> None:
            if log.fail_after is not None and len(log.frames) >= log.fail_after:
                raise RuntimeError("fake device went away")
            log.frames.append(frame.reshape(log.shape).copy())

        def device(self) -> str:
            return self._device

        def native_fourcc(self) -> int | None:
            return None

    pyvirtualcam.register_backend(FAKE_BACKEND, FakeBackend)
    try:
        yield log
    finally:
        pyvirtualcam_camera.BACKENDS.pop(FAKE_BACKEND, None)


# --- X display -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A real X server (Xvfb, 1280x1024x24) for the whole session; sets ``DISPLAY`` to it.

    Fails, never skips, when Xvfb is missing: the preview checks must run.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb not found: install xvfb (apt-get install -y xvfb) to run preview tests")
    # -displayfd: Xvfb picks a free display number and writes it once it accepts connections.
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 20.0
        with os.fdopen(read_fd, "rb") as pipe:
            while not number.endswith(b"\n") and time.monotonic() < deadline:
                chunk = pipe.read(1)
                if not chunk:
                    break
                number += chunk
        if not number.strip():
            pytest.fail(f"Xvfb did not start (exit code {proc.poll()})")
        display = f":{number.decode().strip()}"
        _wait_for_x(display)
        old = {k: os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_LOGGING_RULES")}
        os.environ["DISPLAY"] = display
        os.environ.pop("WAYLAND_DISPLAY", None)
        # Qt warns about missing bundled fonts on every window; the text is not under test.
        os.environ["QT_LOGGING_RULES"] = "*.warning=false"
        try:
            yield display
        finally:
            # Close OpenCV's windows while the server still runs.
            cv2.destroyAllWindows()
            cv2.waitKey(1)
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_x(display: str, timeout: float = 10.0) -> None:
    from Xlib import display as xdisplay
    from Xlib.error import DisplayError as XDisplayError

    deadline = time.monotonic() + timeout
    while True:
        try:
            xdisplay.Display(display).close()
            return
        except XDisplayError:
            if time.monotonic() > deadline:
                pytest.fail(f"Xvfb on {display} does not accept connections")
            time.sleep(0.05)


@dataclass
class XScreen:
    """Reads the X screen and sends key presses through XTest (python-xlib)."""

    display_name: str
    _display: Any = None

    def _d(self) -> Any:
        if self._display is None:
            from Xlib import display as xdisplay

            self._display = xdisplay.Display(self.display_name)
        return self._display

    def grab(self) -> np.ndarray:
        """The whole screen as ``(H, W, 3)`` uint8 BGR."""
        from Xlib import X

        root = self._d().screen().root
        geometry = root.get_geometry()
        image = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        pixels = np.frombuffer(image.data, np.uint8).reshape(geometry.height, geometry.width, 4)
        return pixels[..., :3].copy()  # 24-bit TrueColor ZPixmap is B, G, R, pad

    def find_window(self, title: str) -> Any:
        """The mapped top-level X window with this title, or None."""
        from Xlib import X

        def walk(window: Any) -> Any:
            for child in window.query_tree().children:
                try:
                    mapped = child.get_attributes().map_state == X.IsViewable
                    if mapped and child.get_wm_name() == title:
                        return child
                except Exception:  # a window that vanished while we looked
                    continue
                found = walk(child)
                if found is not None:
                    return found
            return None

        return walk(self._d().screen().root)

    def press_key(self, key: str, *, window_title: str | None = None) -> None:
        """Press and release ``key`` (a character like ``"q"`` or an X keysym name like
        ``"Escape"``), focusing the window titled ``window_title`` first when given.

        Without a window manager, keys go to the focused window, so pass the title.
        """
        from Xlib import XK, X
        from Xlib.ext import xtest

        d = self._d()
        if window_title is not None:
            window = self.find_window(window_title)
            if window is None:
                raise AssertionError(f"no window titled {window_title!r} on {self.display_name}")
            window.set_input_focus(X.RevertToParent, X.CurrentTime)
        keysym = XK.string_to_keysym(key)
        if keysym == 0 and len(key) == 1:
            keysym = ord(key)
        keycode = d.keysym_to_keycode(keysym)
        if keycode == 0:
            raise AssertionError(f"no keycode for key {key!r}")
        xtest.fake_input(d, X.KeyPress, keycode)
        xtest.fake_input(d, X.KeyRelease, keycode)
        d.sync()

    def close_window(self, title: str) -> None:
        """Ask the window to close as a window manager does when the user clicks its [x]."""
        from Xlib import X
        from Xlib.protocol import event

        d = self._d()
        window = self.find_window(title)
        if window is None:
            raise AssertionError(f"no window titled {title!r} on {self.display_name}")
        protocols = d.intern_atom("WM_PROTOCOLS")
        delete = d.intern_atom("WM_DELETE_WINDOW")
        message = event.ClientMessage(
            window=window, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        window.send_event(message, event_mask=X.NoEventMask)
        d.sync()

    def close(self) -> None:
        if self._display is not None:
            self._display.close()
            self._display = None


@pytest.fixture
def x_screen(xvfb_display: str) -> Iterator[XScreen]:
    """Screen grabs and key presses on the test X server."""
    screen = XScreen(xvfb_display)
    try:
        yield screen
    finally:
        screen.close()


@pytest.fixture
def press_key(x_screen: XScreen) -> Callable[..., None]:
    """``press_key(key, window_title=None)``: a key press on the test X server via XTest."""
    return x_screen.press_key
