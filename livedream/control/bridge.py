"""The one adapter between a run and the world outside it (the control page, OSC).

``ControlBridge`` reads and writes the run's ``Controls`` (through the preview's
``KeyHandler`` where a key does the same, so keys and page stay in step), reads its ``Stats``
and holds a reference to the newest output frame. Every change is checked first
(``values.check_value``) and applied only when all of it is good.

Threads: ``offer()`` is called by the output loop and only stores a reference; everything else
by the server's or the OSC thread. Plain attribute writes are atomic in CPython, as for keys.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from livedream.config import DreamConfig
from livedream.control.looks import (
    SavedLook,
    apply_look,
    check_name,
    list_looks,
    load_look,
    look_of,
    save_look,
)
from livedream.control.values import SETTINGS, BadValue, check_value
from livedream.controls import Controls
from livedream.media import Frame
from livedream.models import ModelSpec
from livedream.preview import KeyHandler, describe_channels, save_screenshot
from livedream.stats import Stats

AUTO = "auto"
SHORT_SIDES = (96, 120, 144, 180, 240, 288, 360, 480, 576, 720)  # the size selector's rungs
SCREENSHOT = re.compile(r"livedream-[0-9-]+\.png")  # what save_screenshot names its files


class ControlBridge:
    """Reads and writes a run's live settings, figures and newest frame for the outside.

    Args:
        controls: the run's live settings (the one owner).
        keys: the preview's keys: layer and channel presets, chosen the way ``l``/``c`` do.
        stats: the run's figures.
        spec: the model dreamed (looks are checked against it).
        frame_size: (w, h) of the input frames: the size selector's sizes keep its aspect.
        start_size: (w, h) the dream starts at (the status shows the newest keyframe's).
        looks_folder: where looks are saved and loaded.
        screenshot_folder: where screenshots are saved (where the run is).
        face_tracking: the run protects faces (else faces and face_strength are refused).
    """

    def __init__(
        self,
        controls: Controls,
        keys: KeyHandler,
        stats: Stats,
        *,
        spec: ModelSpec,
        frame_size: tuple[int, int],
        start_size: tuple[int, int],
        looks_folder: Path,
        screenshot_folder: Path,
        face_tracking: bool,
    ) -> None:
        self.controls = controls
        self.keys = keys
        self.stats = stats
        self.spec = spec
        self.start_size = start_size
        self.looks_folder = looks_folder
        self.screenshot_folder = screenshot_folder
        self.face_tracking = face_tracking
        self.sizes = _sizes(frame_size, start_size)
        self._frame: Frame | None = None
        self._frames = 0  # output frames offered so far: the live view's "is it new"
        self._started = time.time()
        self._lock = threading.Lock()  # one change at a time (page and OSC)

    # -- the output loop's hook ---------------------------------------------------------------
    def offer(self, frame: Frame) -> None:
        """The newest output frame, (H, W, 3) uint8 BGR: a reference, never a copy or a wait.

        The caller must not change ``frame`` afterwards (output frames are not reused).
        """
        self._frame = frame
        self._frames += 1

    def latest(self) -> tuple[int, Frame | None]:
        """(frames offered so far, the newest frame or None)."""
        return self._frames, self._frame

    # -- reading -------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """The layer presets, as ``l`` cycles them."""
        return [",".join(layers) for layers in self.keys.presets]

    def channel_names(self) -> list[str]:
        """The channel presets, as ``c`` cycles them ("all channels" last)."""
        return [name for name, _ in self.keys.looks]

    def _choices(self, name: str) -> tuple[str, ...]:
        if name == "layers":
            return (*self.layer_names(), self._current_layers())
        if name == "channels":
            return (*self.channel_names(), self._current_channels())
        if name == "dream_size":
            return (AUTO, *self.sizes, self._current_size())
        return ()

    def _current_layers(self) -> str:
        return ",".join(self.controls.layers)

    def _current_channels(self) -> str:
        for name, channels in self.keys.looks:
            if channels == self.controls.channels:
                return name
        return describe_channels(self.controls.channels)

    def _current_size(self) -> str:
        c = self.controls
        if c.size_follows_machine:
            return AUTO
        w, h = c.dream_size or self.stats.dream_size or self.start_size
        return f"{w}x{h}"

    def settings(self) -> dict[str, Any]:
        """Every setting by its API name, as the dream applies it now."""
        c = self.controls
        return {
            "dream": c.enabled,
            "steps": c.steps,
            "strength": c.step_size,
            "blend": c.blend,
            "flow": c.flow,
            "mirror": c.mirror,
            "faces": c.faces,
            "face_strength": c.face_strength,
            "guide": c.guide,
            "layers": self._current_layers(),
            "channels": self._current_channels(),
            "dream_rate": c.dream_rate,
            "dream_size": self._current_size(),
        }

    def figures(self) -> dict[str, Any]:
        """What the status table shows: rates, dream age, latency, dream size, faces."""
        s = self.stats
        w, h = self.stats.dream_size or self.controls.dream_size or self.start_size
        return {
            "output_fps": round(s.output_fps.rate(), 2),
            "dream_fps": round(s.dream_fps.rate(), 2),
            "dream_age_ms_p50": round(s.dream_age_ms(0.5), 1),
            "dream_age_ms_p95": round(s.dream_age_ms(0.95), 1),
            "latency_ms_p50": round(s.latency_ms(0.5), 1),
            "latency_ms_p95": round(s.latency_ms(0.95), 1),
            "dream_size": f"{w}x{h}",
            "faces": s.faces,
            "frames_out": s.output,
            "keyframes": s.dreamed,
        }

    def state(self) -> dict[str, Any]:
        """Everything the page shows: settings, their choices, figures, looks, screenshots."""
        return {
            "settings": self.settings(),
            "options": {
                "layers": list(dict.fromkeys(self._choices("layers"))),
                "channels": list(dict.fromkeys(self._choices("channels"))),
                "dream_size": list(dict.fromkeys(self._choices("dream_size"))),
                "ranges": {
                    s.name: [s.low, s.high] for s in SETTINGS.values() if s.kind in (int, float)
                },
                "has_guide": self.controls.has_guide,
                "face_tracking": self.face_tracking,
            },
            "figures": self.figures(),
            "looks": list_looks(self.looks_folder),
            "screenshots": self.screenshots(),
        }

    # -- writing -------------------------------------------------------------------------
    def change(self, values: Mapping[str, object]) -> None:
        """Checks every value, then applies them all, as the keys would.

        Raises:
            BadValue: any value of the wrong type or range; nothing is changed then.
        """
        if not values:
            raise BadValue('expected at least one setting, such as {"strength": 0.02}')
        with self._lock:
            checked = {name: self._check(name, value) for name, value in values.items()}
            for name, value in checked.items():
                self._apply(name, value)

    def _check(self, name: str, value: object) -> object:
        checked = check_value(name, value, self._choices(name))
        if name == "guide" and checked and not self.controls.has_guide:
            raise BadValue("guide: there is no guide image yet: upload one (or start with --guide)")
        if name in ("faces", "face_strength") and not self.face_tracking:
            raise BadValue(
                f"{name}: this run does not protect faces (it started with --face-strength 1)"
            )
        return checked

    def _apply(self, name: str, value: Any) -> None:
        c = self.controls
        if name == "layers":
            self.keys.select_layers(tuple(value.split(",")))
        elif name == "channels":
            names = self.channel_names()
            if value in names:  # else: the channels dreamed now, left as they are
                self.keys.select_look(names.index(value))
        elif name == "dream_size":
            # Picking a size turns the automatic one off; "auto" turns it back on.
            c.dream_size = None if value == AUTO else _parse_size(value)
            c.auto_size = value == AUTO
        else:
            field = {"dream": "enabled", "strength": "step_size"}.get(name, name)
            setattr(c, field, value)

    def reset(self) -> None:
        """Drops the carried dream, as ``r`` does."""
        self.controls.request_reset()

    def set_guide(self, image: np.ndarray) -> None:
        """Hands a decoded guide, (H, W, 3) uint8 BGR, to the dream thread; turns the guide on."""
        self.controls.set_guide_image(image)

    # -- screenshots and looks ---------------------------------------------------------------
    def screenshot(self) -> str:
        """Saves the newest output frame where the run is; returns the file's name.

        Raises:
            BadValue: no frame went out yet. SinkError: the file could not be written.
        """
        _, frame = self.latest()
        if frame is None:
            raise BadValue("screenshot: no frame has gone out yet; try again in a moment")
        return save_screenshot(frame, self.screenshot_folder).name

    def screenshots(self) -> list[str]:
        """This run's screenshots in its folder (the ``s`` key's and the page's), newest first."""
        folder = self.screenshot_folder
        found = []
        for path in folder.glob("livedream-*.png"):
            try:
                if SCREENSHOT.fullmatch(path.name) and path.stat().st_mtime >= self._started - 1:
                    found.append(path.name)
            except OSError:
                continue
        return sorted(found, reverse=True)

    def screenshot_path(self, name: str) -> Path | None:
        """The screenshot file called ``name`` of this run, or None (never another file)."""
        return self.screenshot_folder / name if name in self.screenshots() else None

    def save_look(self, name: str) -> str:
        """Saves the settings now as look ``name``; returns it. Raises LookError, OSError."""
        save_look(look_of(check_name(name), self.controls), self.looks_folder)
        return name

    def load_look(self, name: str) -> SavedLook:
        """Applies the saved look ``name``. Raises ``LookError`` (one line), changing nothing."""
        look = load_look(name, self.looks_folder, self.spec)
        with self._lock:
            apply_look(look, self.controls)
            self.keys.select_layers(self.controls.layers)
            choices = [channels for _, channels in self.keys.looks]
            if self.controls.channels in choices:
                self.keys.look = choices.index(self.controls.channels)
        return look


def _parse_size(text: str) -> tuple[int, int]:
    w, h = text.split("x")
    return int(w), int(h)


def _sizes(frame_size: tuple[int, int], start_size: tuple[int, int]) -> list[str]:
    """The size selector's sizes: the frame's aspect, short sides up to the frame's own."""
    w, h = frame_size
    sizes = {
        DreamConfig(short_side=side).size.size_for(w, h)
        for side in SHORT_SIDES
        if side <= min(w, h)
    }
    sizes.add(start_size)
    return [f"{sw}x{sh}" for sw, sh in sorted(sizes)]
