"""The preview window: a sink that shows the dream, and its keys, overlay and screenshots.

Main thread only (macOS requires it). The keys write ``Controls`` (the dream thread applies
them) or the window's own state (overlay, screenshot, quit); nothing here touches the dream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from livedream.config import protecting
from livedream.controls import Controls
from livedream.display import display_error, no_display_reason
from livedream.errors import LivedreamError, SinkError
from livedream.media import Frame, check_frame
from livedream.models import Channels
from livedream.sinks.base import Sink

logger = logging.getLogger(__name__)

KEY_NONE = -1  # PreviewWindow.show(): no key pressed
KEY_ESC = 27
FIT_ASKS = 5  # PreviewWindow: times the picture's size is asked again before giving up
FIT_EVERY_S = 0.25  # apart
KEYS_HELP = (
    "preview keys: q/Esc quit, space dream on/off, +/- strength, [/] steps per frame, "
    "l layer preset, c channel preset, g guide on/off, f flow carry, r reset, m mirror, "
    "k face protection, s screenshot, v save the look, h heads-up overlay"
)
ALL_CHANNELS: tuple[str, Channels] = (
    "all channels",
    (),
)  # the `c` cycle's stop where every channel is dreamed


def describe_channels(channels: Channels) -> str:
    """``block4_conv3:12,77`` for the notes, status table and overlay; "all" for ()."""
    return " ".join(f"{layer}:{','.join(map(str, c))}" for layer, c in channels) or "all"


class KeyHandler:
    """What the preview's keys do: each changes the controls or the window's own state.

    Args:
        controls: the run's live settings.
        presets: the layer sets ``l`` cycles through.
        hud: the overlay starts on.
        channel_presets: (name, channels) looks ``c`` cycles through; "all channels" is added
            at the end.
        save_look: ``v``: saves the settings as a named look and returns its name (raises
            ``LivedreamError`` or ``OSError`` when it cannot); None: ``v`` does nothing.
    """

    def __init__(
        self,
        controls: Controls,
        presets: Sequence[tuple[str, ...]],
        *,
        hud: bool = False,
        channel_presets: Sequence[tuple[str, Channels]] = (),
        save_look: Callable[[], str] | None = None,
    ) -> None:
        self.controls = controls
        self.presets = list(presets)
        # The first `l` press moves on from the layers being dreamed, wherever they sit.
        current = controls.layers
        self.preset = self.presets.index(current) if current in self.presets else -1
        self.looks: list[tuple[str, Channels]] = [*channel_presets, ALL_CHANNELS]
        chosen = [channels for _, channels in self.looks]
        self.look = chosen.index(controls.channels) if controls.channels in chosen else -1
        self.hud = hud
        self.quit = False
        self.screenshot = False
        self.save_look = save_look

    def handle(self, key: int) -> str | None:
        """Applies ``key``; returns a short note of what changed, or None."""
        c = self.controls
        ch = chr(key) if 0 <= key < 256 else ""
        if ch in ("q", "Q") or key == KEY_ESC:
            self.quit = True
            return "quit"
        if ch == " ":
            c.enabled = not c.enabled
            return f"dream {'on' if c.enabled else 'off'}"
        if ch in ("+", "="):
            c.stronger()
            return f"strength {c.step_size:.4f}"
        if ch in ("-", "_"):
            c.weaker()
            return f"strength {c.step_size:.4f}"
        if ch == "]":
            c.more_steps()
            return f"steps {c.steps}"
        if ch == "[":
            c.fewer_steps()
            return f"steps {c.steps}"
        if ch == "l" and self.presets:
            self.preset = (self.preset + 1) % len(self.presets)
            c.layers = self.presets[self.preset]
            return f"layers {','.join(c.layers)}"
        if ch == "c" and len(self.looks) > 1:
            return self._next_look()
        if ch == "g" and c.toggle_guide():
            return f"guide {'on' if c.guide else 'off'}"
        if ch == "f":
            c.flow = not c.flow
            return f"flow carry {'on' if c.flow else 'off'}"
        if ch == "r":
            c.request_reset()
            return "dream reset"
        if ch == "m":
            c.mirror = not c.mirror
            return f"mirror {'on' if c.mirror else 'off'}"
        if ch == "k":
            if not protecting(c.face_strength):
                return "face protection needs --face-strength below 1"
            c.faces = not c.faces
            return f"face protection {'on' if c.faces else 'off'}"
        if ch == "s":
            self.screenshot = True
            return "screenshot"
        if ch == "h":
            self.hud = not self.hud
            return f"overlay {'on' if self.hud else 'off'}"
        if ch == "v" and self.save_look is not None:
            try:
                return f"saved the look {self.save_look()!r}"
            except (LivedreamError, OSError) as exc:  # a live session goes on
                return f"could not save the look: {exc}"
        return None

    def select_layers(self, layers: tuple[str, ...]) -> None:
        """Dreams ``layers`` (the page, a look); ``l`` goes on from there."""
        self.controls.layers = layers
        self.preset = self.presets.index(layers) if layers in self.presets else -1

    def _next_look(self) -> str:
        """``c``: the next channel preset; the dream moves onto its layer when it is elsewhere."""
        return self.select_look((self.look + 1) % len(self.looks))

    def select_look(self, index: int) -> str:
        """Channel preset ``index`` of ``looks`` (the page, OSC); ``c`` goes on from there."""
        c = self.controls
        self.look = index
        name, channels = self.looks[self.look]
        layers = tuple(layer for layer, _ in channels)
        note = f"channels {name} ({describe_channels(channels)})" if channels else name
        if layers and not set(layers) <= set(c.layers):
            c.layers = layers
            self.preset = self.presets.index(layers) if layers in self.presets else -1
            note += f", layers {','.join(layers)}"
        c.channels = channels
        return note


def save_screenshot(image: Frame, folder: Path = Path()) -> Path:
    """Saves ``image`` as ``livedream-<time>.png`` in ``folder``; returns the path.

    Raises:
        SinkError: the file could not be written.
    """
    path = folder / f"livedream-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
    if not cv2.imwrite(str(path), image):
        raise SinkError(f"could not write the screenshot {path}: is the folder writable?")
    return path


def loading_frame(width: int, height: int) -> Frame:
    """A dark frame saying the model is loading, for the preview meanwhile."""
    image = np.zeros((max(120, height // 2), max(320, width // 2), 3), np.uint8)
    cv2.putText(
        image,
        "loading the dream...",
        (20, 60),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return image


class PreviewWindow(Sink):
    """A resizable OpenCV window showing frames, with the preview keys; main thread only.

    As a sink, ``write()`` shows a frame (with the overlay when ``h`` turned it on) and handles
    the key pressed; ``idle()`` shows the last frame again (or the loading screen) so the
    window answers while the dream works; ``wants_stop`` turns True when the user quits (``q``,
    Esc) or closes the window.

    Args:
        title: the window title.
        keys: what the keys do; None: keys are ignored.
        overlay: the overlay's lines, asked for each frame shown with the overlay on.
        loading: shown by ``idle()`` until the first frame.

    Raises:
        DisplayError: no display here (SSH, container, headless OpenCV).
    """

    def __init__(
        self,
        title: str = "livedream",
        *,
        keys: KeyHandler | None = None,
        overlay: Callable[[], list[str]] | None = None,
        loading: Frame | None = None,
    ) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("PreviewWindow must be created and used on the main thread")
        reason = no_display_reason()
        if reason is not None:
            raise display_error(reason)
        self._title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise display_error(str(e).strip().splitlines()[-1]) from e
        self._closed = False
        self._seen_visible = False
        self._size: tuple[int, int] | None = None
        self._fitted = False  # the window was seen at self._size (or asked often enough)
        self._asks, self._asked_at = 0, 0.0  # sizes asked again since, and when last
        self.keys = keys
        self._overlay = overlay
        self._last: Frame | None = loading

    @property
    def name(self) -> str:
        return f"preview window {self._title!r}"

    @property
    def wants_stop(self) -> bool:
        """True once the user quit with a key or closed the window."""
        return (self.keys is not None and self.keys.quit) or not self.is_open()

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Shows ``frame`` (the overlay on top when on) and handles the key pressed."""
        self._last = frame
        self._present(frame)

    def idle(self) -> None:
        """Shows the last frame again (or the loading screen) and handles a key."""
        if self._last is not None:
            self._present(self._last)

    def _present(self, frame: Frame) -> None:
        keys = self.keys
        shown = frame
        if keys is not None and keys.hud and self._overlay is not None:
            shown = draw_hud(frame, self._overlay())
        key = self.show(shown)
        if key < 0 or keys is None:
            return
        note = keys.handle(key)
        if keys.screenshot:
            keys.screenshot = False
            try:  # the frame without the overlay: the picture, not the instruments
                logger.info("saved %s", save_screenshot(frame))
            except SinkError as exc:  # a failed screenshot must not end a live session
                logger.warning("%s", exc)
        elif note:
            logger.info("%s", note)

    def is_open(self) -> bool:
        """False once the user closed the window (or ``close()`` was called)."""
        if self._closed:
            return False
        try:
            visible = cv2.getWindowProperty(self._title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # gone: Qt let go of its last window (closed, seen by us or not)
            self._seen_visible = True
            return False
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
        check_frame(frame)
        if not self.is_open():
            return KEY_NONE
        try:
            self._fit(int(frame.shape[1]), int(frame.shape[0]))
        except cv2.error:  # closed since is_open() asked: gone for good, not shown again
            self._seen_visible = True
            return KEY_NONE
        cv2.imshow(self._title, frame)
        key = int(cv2.waitKey(1))
        return KEY_NONE if key == -1 else key & 0xFF

    def _fit(self, width: int, height: int) -> None:
        """Sizes the window to the picture (a normal window does not follow the image size by
        itself). Qt can map a new window at its own default size after an early resize, so the
        size is asked again, at most ``FIT_ASKS`` times ``FIT_EVERY_S`` apart (Qt answers a
        resize a few events later), until the window was seen at it; after that a user's resize
        stays."""
        if (width, height) != self._size:
            self._size, self._fitted, self._asks = (width, height), False, 0
            cv2.resizeWindow(self._title, width, height)
            self._asked_at = time.monotonic()
        elif not self._fitted and self._seen_visible:
            shown = tuple(cv2.getWindowImageRect(self._title)[2:])
            self._fitted = shown == self._size or self._asks >= FIT_ASKS
            if not self._fitted and time.monotonic() - self._asked_at >= FIT_EVERY_S:
                cv2.resizeWindow(self._title, width, height)
                self._asks, self._asked_at = self._asks + 1, time.monotonic()

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
