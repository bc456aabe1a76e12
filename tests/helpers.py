"""Test helpers: a real livedream process, small videos and frames, a fake virtual camera
backend for pyvirtualcam, a real X server (Xvfb) with screen grabs and key presses, and the
small measures the tests share. ``conftest.py`` wraps these in fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyvirtualcam
from pyvirtualcam import camera as pyvirtualcam_camera

MEDIA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media"
FAKE_BACKEND = "livedream-test"
# CLI flags for a dream that is real (vgg16_hed weights) but small enough for quick tests.
FAST = ["--dream-size", "64x48", "--layers", "block2_conv2", "--precision", "float32"]

WriteVideo = Callable[..., Path]
NumberedFrame = Callable[[int, int, int], np.ndarray]


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


def run_livedream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Runs a real ``python -m livedream ARGS`` process to its end."""
    return subprocess.run(
        [sys.executable, "-m", "livedream", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def one_line(stderr: str) -> str:
    """The single line of ``stderr``; fails on a traceback or any other line."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


def hidden_files(folder: Path) -> list[str]:
    """The names of the dot files in ``folder`` (temporary files left behind)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- media -------------------------------------------------------------------------------


def make_numbered_frame(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose colour and printed number encode ``index``: ``(H, W, 3)`` uint8 BGR."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:] = ((index * 7) % 256, (index * 13) % 256, 128)
    cv2.putText(frame, str(index), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255,) * 3, 2)
    return frame


def write_video(
    path: Path, *, frames: int = 30, width: int = 160, height: int = 120, fps: float = 25.0
) -> Path:
    """Writes a small video of numbered frames (MJPG for .avi, mp4v otherwise)."""
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write test video {path}"
    for i in range(frames):
        writer.write(make_numbered_frame(i, width, height))
    writer.release()
    return path


def write_textured_video(path: Path, *, frames: int, width: int = 320, height: int = 240) -> Path:
    """Frames of moving noise: big once encoded, so the temporary file grows visibly per frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.roll(base, 3 * i, axis=1))
    writer.release()
    return path


def photo(path: Path | None = None, *, width: int = 128, height: int = 96) -> np.ndarray:
    """A bright, smooth, colourful photo, not mirror-symmetric: easy to find on screen, clearly
    changed by a dream. Written to ``path`` (PNG) when given; ``(H, W, 3)`` uint8 BGR."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.dstack(
        [
            120 + 100 * np.sin(xs / 9),
            150 + 80 * np.cos(ys / 7),
            110 + 40 * np.sin((xs + ys) / 11) + 100 * xs / width,  # redder to the right
        ]
    ).astype(np.uint8)
    if path is not None:
        assert cv2.imwrite(str(path), image)
    return image


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """Every decoded frame of a video file and its fps."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open as a video"
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def count_frames(path: Path) -> tuple[int, int, int]:
    """(frames decoded, width, height) of a video file: it plays when this counts frames."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open as a video"
    n = 0
    while capture.read()[0]:
        n += 1
    size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    return n, size[0], size[1]


def video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    return fps


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-shaped pictures, in grey levels."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def wait_for(condition: Callable[[], Any], timeout: float = 120.0, what: str = "") -> Any:
    """Polls ``condition()`` until it returns something other than None or False; fails after
    ``timeout`` seconds (a bound on a hang, far above what a loaded machine takes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting{': ' + what if what else ''}")


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


@contextmanager
def fake_virtual_camera() -> Iterator[FakeCameraLog]:
    """Registers a pyvirtualcam backend named ``livedream-test`` that records every frame.

    Set ``fail_open`` or ``fail_after`` on the yielded log to make the backend fail.
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


class XvfbError(RuntimeError):
    """Xvfb is missing or did not start."""


@contextmanager
def xvfb(screen: str = "1280x1024x24") -> Iterator[str]:
    """A real X server (Xvfb) for the block; sets ``DISPLAY`` to it and yields it (``:N``).

    Raises:
        XvfbError: Xvfb is not installed or does not accept connections.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        raise XvfbError("Xvfb not found: install xvfb (apt-get install -y xvfb)")
    # -displayfd: Xvfb picks a free display number and writes it once it accepts connections.
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
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
            raise XvfbError(f"Xvfb did not start (exit code {proc.poll()})")
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
        except XDisplayError as exc:
            if time.monotonic() > deadline:
                raise XvfbError(f"Xvfb on {display} does not accept connections") from exc
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

    def grab(self, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The screen, or its ``box`` (x, y, width, height), as ``(H, W, 3)`` uint8 BGR."""
        from Xlib import X

        root = self._d().screen().root
        if box is None:
            geometry = root.get_geometry()
            box = (0, 0, geometry.width, geometry.height)
        x, y, width, height = box
        image = root.get_image(x, y, width, height, X.ZPixmap, 0xFFFFFFFF)
        pixels = np.frombuffer(image.data, np.uint8).reshape(height, width, 4)
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

    def window(self, title: str) -> Any:
        """The mapped top-level X window with this title; fails the test when there is none."""
        found = self.find_window(title)
        if found is None:
            raise AssertionError(f"no window titled {title!r} on {self.display_name}")
        return found

    def window_pixels(self, title: str) -> np.ndarray | None:
        """What the window titled ``title`` shows, ``(H, W, 3)`` uint8 BGR; None while it is
        not mapped (or vanished meanwhile)."""
        window = self.find_window(title)
        if window is None:
            return None
        try:
            root = self._d().screen().root
            geometry = window.get_geometry()
            origin = root.translate_coords(window, 0, 0)
            screen = root.get_geometry()
        except Exception:  # the window went away while we looked
            return None
        x, y = max(0, origin.x), max(0, origin.y)
        width = min(geometry.width, screen.width - x)
        height = min(geometry.height, screen.height - y)
        if width <= 0 or height <= 0:
            return None
        return self.grab((x, y, width, height))

    def press_key(self, key: str, *, window_title: str | None = None) -> None:
        """Press and release ``key`` (a character like ``"q"`` or an X keysym name like
        ``"Escape"``), focusing the window titled ``window_title`` first when given.

        Without a window manager, keys go to the focused window, so pass the title.
        """
        from Xlib import XK, X
        from Xlib.ext import xtest

        d = self._d()
        if window_title is not None:
            self.window(window_title).set_input_focus(X.RevertToParent, X.CurrentTime)
        keysym = XK.string_to_keysym(key)
        if keysym == 0 and len(key) == 1:
            keysym = ord(key)
        keycode = d.keysym_to_keycode(keysym)
        if keycode == 0:
            raise AssertionError(f"no keycode for key {key!r}")
        xtest.fake_input(d, X.KeyPress, keycode)
        xtest.fake_input(d, X.KeyRelease, keycode)
        d.sync()

    def resize_window(self, title: str, width: int, height: int) -> None:
        """Resize the window as a user dragging its corner (or a window manager) does."""
        self.window(title).configure(width=width, height=height)
        self._d().sync()

    def close_window(self, title: str) -> None:
        """Ask the window to close as a window manager does when the user clicks its [x]."""
        from Xlib import X
        from Xlib.protocol import event

        d = self._d()
        window = self.window(title)
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


# --- reading the preview's overlay -----------------------------------------------------------

WHITE = 180  # overlay text is white on a box darkened to at most 102 grey levels


def overlay_scores(
    pixels: np.ndarray, lines: list[str], index: int, candidates: list[str]
) -> list[float]:
    """How well line ``index`` of the preview's overlay on screen reads as each candidate text:
    the overlap (intersection over union, 0..1) of its white text pixels with the candidate
    drawn the way the preview draws it, over the columns where the candidates differ (all of
    the line for one candidate). ``lines`` gives the other lines (they set the spacing)."""
    from livedream.preview import draw_hud

    def white(text: str) -> np.ndarray:
        drawn = draw_hud(np.zeros_like(pixels), [*lines[:index], text, *lines[index + 1 :]])
        return drawn.max(axis=2) >= WHITE  # type: ignore[no-any-return]

    empty = white("")
    wanted = [white(text) for text in candidates]
    rows = np.nonzero(np.any([(w != empty).any(axis=1) for w in wanted], axis=0))[0]
    if rows.size == 0:
        return [0.0] * len(candidates)
    band = slice(rows.min(), rows.max() + 1)
    differ = np.any([(w[band] != wanted[0][band]).any(axis=0) for w in wanted], axis=0)
    if not differ.any():
        differ = np.any([w[band].any(axis=0) for w in wanted], axis=0)
    cols = np.nonzero(differ)[0]
    region = (band, slice(max(0, cols.min() - 2), cols.max() + 3))
    shown = pixels[region].max(axis=2) >= WHITE
    scores = []
    for want in wanted:
        union = np.logical_or(shown, want[region]).sum()
        scores.append(float(np.logical_and(shown, want[region]).sum() / union) if union else 0.0)
    return scores


# --- faces -------------------------------------------------------------------------------

# Where the astronaut's face is in ``face_photo()`` at 256x256 (x, y, w, h): measured once with
# the Haar detector at several sizes (it finds x 84-88, y 30-33, w 46-54).
FACE_BOX = (86, 31, 50, 50)


def face_photo(size: int = 256, *, shift: int = 0) -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, a real face that OpenCV's Haar cascade finds),
    ``size`` x ``size``, its content moved ``shift`` px right: (H, W, 3) uint8 BGR."""
    from skimage import data

    image = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (size, size))
    if shift:
        image = np.ascontiguousarray(np.roll(image, shift, axis=1))
    return image


def region_means(diff: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """Mean of ``diff`` (H, W) inside ``box`` (x, y, w, h) and outside it."""
    x, y, w, h = (round(v) for v in box)
    inside = np.zeros(diff.shape[:2], bool)
    inside[y : y + h, x : x + w] = True
    return float(diff[inside].mean()), float(diff[~inside].mean())


def stream_run(config: Any, source: Any, console: Any) -> Any:
    """A ``StreamRun`` as the CLI makes it: the request checked, the run planned, the dream
    resolved for this machine."""
    from livedream.device import detect_device
    from livedream.limits import check_frames
    from livedream.plan import check_request, plan_run
    from livedream.resolve import resolve_dream
    from livedream.run import StreamRun

    look = check_request(config)
    plan = plan_run(config, source)
    check_frames(config, look.spec, source.width, source.height, still=plan.still)
    dream = resolve_dream(look, detect_device())
    return StreamRun(config, source, console, plan=plan, dream=dream)
