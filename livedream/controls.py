"""The settings that change while a run goes on: one owner for each.

The preview's keys write them, the status table and the overlay read them, the capture thread
reads ``mirror`` and the dream thread applies the rest before each frame. Nothing on the main
thread reaches into the dreamer: what the controls say is what the dream runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from livedream.config import DREAM_RATE
from livedream.models import Channels

if TYPE_CHECKING:
    from livedream.resolve import Look

STEP_SIZE_FACTOR = 1.25  # one +/- key press: a quarter stronger or weaker
MIN_STEP_SIZE, MAX_STEP_SIZE = 0.0005, 0.2
MAX_STEPS = 20


@dataclass
class Controls:
    """Live settings, seeded from the resolved dream.

    Plain attribute writes and reads are atomic in CPython: the main thread writes, the worker
    threads read. A reset (``r``) is a request: ``request_reset()`` from any thread, taken once
    by the pipeline (``take_reset()``, under a lock) before its next dream.

    Attributes:
        enabled: dream on (off: frames pass through).
        steps: gradient steps per dreamed frame.
        step_size: strength, as a fraction of the 0..255 range per step.
        flow: carry the dream along the optical flow (off: in place).
        mirror: flip frames left-right where they enter (capture thread).
        layers: the layers being dreamed.
        channels: (layer, channel numbers) dreamed alone; () = every channel.
        guide: dream toward the guide image (only when a guide was given: ``has_guide``).
        has_guide: a ``--guide`` image was given (fixed for the run).
        face_strength: the share of the dream kept on faces (1: no protection).
        faces: face protection on (``k``); read by the dream thread and the compositor.
        blend: the share of the previous keyframe's dream carried on (0: none); the dream
            thread applies it.
        auto_size: the dream's size follows the machine (``--dream-size auto``).
        dream_size: a size picked while running, (w, h); None: the run's own (its fixed size,
            or the automatic one). Picking a size turns ``auto_size`` off.
        dream_rate: dreams a second the automatic size holds (``--dream-rate``).
        guide_image: a new guide picture, (H, W, 3) uint8 BGR, waiting for the dream thread
            (``set_guide_image``/``take_guide_image``); None: none waiting.
    """

    steps: int
    step_size: float
    flow: bool
    layers: tuple[str, ...]
    mirror: bool = False
    enabled: bool = True
    channels: Channels = ()
    guide: bool = False
    has_guide: bool = False
    face_strength: float = 1.0
    faces: bool = True
    blend: float = 0.92
    auto_size: bool = False
    dream_size: tuple[int, int] | None = None
    dream_rate: float = DREAM_RATE
    guide_image: np.ndarray | None = field(default=None, repr=False, compare=False)
    _reset: bool = field(default=False, init=False, repr=False, compare=False)
    _reset_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_dream(
        cls, dream: Look, *, mirror: bool = False, face_strength: float = 1.0
    ) -> Controls:
        """The controls a run starts with: the resolved ``dream``'s layers, channels, guide and
        settings; ``mirror``: ``--mirror``; ``face_strength``: the run plan's."""
        settings = dream.settings
        return cls(
            steps=settings.steps,
            step_size=settings.step_size,
            flow=settings.flow,
            layers=dream.layers,
            mirror=mirror,
            channels=dream.channels,
            guide=dream.guided,
            has_guide=dream.guide is not None,
            face_strength=face_strength,
            blend=settings.blend,
            auto_size=dream.size.auto,
            dream_rate=dream.size.rate,
        )

    @property
    def size_follows_machine(self) -> bool:
        """The dream's size is the automatic one now: ``auto_size`` on and no size picked."""
        return self.auto_size and self.dream_size is None

    def request_reset(self) -> None:
        """Asks for the dream to start afresh (the keyframe and the carried dream); any thread.
        Requests before it is taken count once."""
        with self._reset_lock:
            self._reset = True

    def take_reset(self) -> bool:
        """True once per request, then False until the next: the one consumer (the pipeline's
        dream thread) calls it before each dream."""
        with self._reset_lock:
            requested, self._reset = self._reset, False
        return requested

    def toggle_guide(self) -> bool:
        """Guide on or off (stays off without a guide image); returns whether it changed."""
        if not self.has_guide:
            return False
        self.guide = not self.guide
        return True

    @property
    def kept_on_faces(self) -> float:
        """The share of the dream kept on faces now: 1 while protection is off."""
        return self.face_strength if self.faces else 1.0

    def stronger(self) -> None:
        """A quarter stronger, up to a limit."""
        self.step_size = min(MAX_STEP_SIZE, self.step_size * STEP_SIZE_FACTOR)

    def weaker(self) -> None:
        """A quarter weaker, down to a limit."""
        self.step_size = max(MIN_STEP_SIZE, self.step_size / STEP_SIZE_FACTOR)

    def more_steps(self) -> None:
        """One more step per frame, up to ``MAX_STEPS``."""
        self.steps = min(MAX_STEPS, self.steps + 1)

    def fewer_steps(self) -> None:
        """One step fewer per frame, at least one."""
        self.steps = max(1, self.steps - 1)

    def set_guide_image(self, image: np.ndarray) -> None:
        """A new guide, (H, W, 3) uint8 BGR, for the dream thread to take; turns the guide on.

        Any thread (the control page's); the newest picture wins.
        """
        with self._lock:
            self.guide_image = image
            self.has_guide = True
            self.guide = True

    def take_guide_image(self) -> np.ndarray | None:
        """The guide picture waiting, once (the dream thread, before a keyframe); else None."""
        with self._lock:
            image, self.guide_image = self.guide_image, None
        return image
