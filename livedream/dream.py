"""The dreamer: camera frames in, keyframes and dreamed frames out, the dream carried over time.

``Dreamer`` turns frames into dreamed frames (or keyframes for the compositor), carrying the
dream from frame to frame with optical flow; ``dream_image`` dreams a still photo in octaves.
Both take the ``ResolvedDream`` decided at the door (``livedream.resolve``: model, layers,
channels, guide, precision, compile mode, size policy) and run the compiled ``DreamStep``
(``livedream.step``) built from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from livedream.compositor import Keyframe, add_residual
from livedream.controls import Controls
from livedream.device import Device, choose_variant, cpu_info, detect_device
from livedream.dreamsize import SMALLEST_SHORT_SIDE, DreamSizer
from livedream.models import Channels
from livedream.step import KERAS_POLICY, DreamStep, build_step, run_steps_in_slices
from livedream.temporal import FlowCarry, to_gray

if TYPE_CHECKING:
    from livedream.resolve import ResolvedDream

logger = logging.getLogger(__name__)

__all__ = [
    "KERAS_POLICY",
    "Device",
    "DreamStep",
    "Dreamer",
    "build_step",
    "choose_variant",
    "cpu_info",
    "detect_device",
    "dream_image",
]


class Dreamer:
    """Turns camera frames into dreamed frames, carrying the dream over time.

    Frame in: (H, W, 3) uint8 BGR, any size. Frame out: the same shape and dtype. The frame is
    downscaled to the dream size, started from itself plus the previous frame's dream residual
    warped by optical flow, dreamed for ``steps`` steps, and the residual is upscaled and added
    to the full-resolution frame so the output keeps the camera's sharpness.

    ``apply(controls)`` copies the live settings (``steps``, ``step_size``, ``flow``,
    ``enabled``, ``channels``, ``guided``) from the controls before each frame; none of them
    recompiles anything. A new layer set builds its step once, and drops the carried dream.

    Args:
        dream: the resolved dream; its settings seed the live ones.
        step: a built step (built from ``dream`` when None).
        clock: seconds, for what each keyframe costs (the automatic dream size follows it).

    Thread: the dream thread only.
    """

    def __init__(
        self,
        dream: ResolvedDream,
        *,
        step: DreamStep | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.dream = dream
        self.clock = clock  # times each keyframe: the automatic size follows it
        self._last_captured: float | None = None  # the last keyframe's capture time
        # The size of each keyframe: fixed, or the machine's, never below what the layers the
        # keys may switch to take (InceptionV3's deepest: 75 px; the ladder starts at 96).
        reachable = tuple({layer for preset in dream.layer_presets for layer in preset})
        smallest = max(SMALLEST_SHORT_SIDE, dream.spec.min_side(reachable))
        self.sizer = DreamSizer(dream.size, smallest=smallest)
        self.step = step if step is not None else build_step(dream)
        settings = dream.settings
        self.seed = settings.seed
        self.steps = settings.steps
        self.step_size = settings.step_size
        self.blend = settings.blend
        self.flow = settings.flow
        self.enabled = True
        self.channels: Channels = dream.channels
        self.guided = dream.guided
        self.frame_index = 0
        # ms the last frame spent in each stage: read by the benchmark's breakdown.
        self.timings: dict[str, float] = {}
        self.carry = FlowCarry()  # the previous dream, carried onto the next frame
        self._guide: np.ndarray | None = None  # a guide set while running, for new steps
        self._steps_by_layers: dict[tuple[str, ...], DreamStep] = {
            self.step.model.layers: self.step
        }

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers being dreamed."""
        return self.step.model.layers

    def set_layers(self, layers: Sequence[str]) -> None:
        """Switches to another layer set (built once, then reused)."""
        key = tuple(layers)
        if key not in self._steps_by_layers:
            self._steps_by_layers[key] = build_step(self.dream, key)
            if self._guide is not None:  # a guide uploaded while running
                self._steps_by_layers[key].set_guide(self._guide)
        self.step = self._steps_by_layers[key]

    def reset(self) -> None:
        """Drops the carried dream: the ``r`` key, and a switch to other layers."""
        self.carry.reset()

    def apply(self, controls: Controls) -> None:
        """Brings the dream in line with the live ``controls`` before a frame (a reset, ``r``,
        is the pipeline's to take: ``pipeline.apply_controls``)."""
        self.enabled = controls.enabled
        self.steps = controls.steps
        self.step_size = controls.step_size
        self.flow = controls.flow
        self.channels = controls.channels
        self.guided = controls.guide
        self.blend = controls.blend
        guide = controls.take_guide_image()  # an uploaded guide: its features computed here
        if guide is not None:
            self._guide = guide
            for step in self._steps_by_layers.values():
                step.set_guide(guide)
        self.sizer.follow(controls.auto_size, controls.dream_size, controls.dream_rate)
        if controls.layers != self.layers:
            self.set_layers(controls.layers)
            self.reset()

    def keyframe(self, frame: np.ndarray, *, index: int = -1, captured: float = 0.0) -> Keyframe:
        """Dreams ``frame`` at the dream size, from the carried dream; returns the keyframe.

        Args:
            frame: (H, W, 3) uint8 BGR, any size.
            index: its frame number (the compositor skips the flow for this very frame).
            captured: its capture time, ``time.perf_counter()``.

        Returns:
            The small grey frame and the dream residual (zero when the dream is off).
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"unexpected frame: {frame.shape} {frame.dtype} != (H, W, 3) uint8")
        self.frame_index += 1
        t0 = self.clock()
        h, w = frame.shape[:2]
        size = self.sizer.size_for(w, h)
        small8 = frame if (w, h) == size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        gray = to_gray(small8)
        if not self.enabled:
            self.carry.reset()
            return Keyframe(gray, np.zeros((*gray.shape, 3), np.float32), captured, index)
        small = small8.astype(np.float32)  # (h, w, 3) float32 BGR in [0, 255]
        t1 = self.clock()
        carried = self.carry.carry(gray, blend=self.blend, flow=self.flow)
        start = small if carried is None else np.clip(small + carried, 0.0, 255.0)
        t2 = self.clock()
        dreamed, _ = self.step(
            start,
            steps=self.steps,
            step_size=self.step_size * 255.0,
            seed=(self.seed, self.frame_index),
            channels=self.channels,
            guided=self.guided,
        )
        t3 = self.clock()
        residual = dreamed - small  # (h, w, 3) float32: what the dream added
        self.carry.update(gray, residual)
        # The size follows what this keyframe cost, and how fast the picture moves.
        self.sizer.observe(t3 - t0, t3, self._motion(size[0], captured))
        self.timings = {
            "downscale": 1000.0 * (t1 - t0),
            "flow_carry": 1000.0 * (t2 - t1),
            "dream_step": 1000.0 * (t3 - t2),
        }
        return Keyframe(gray, residual, captured, index)

    def _motion(self, width: int, captured: float) -> float | None:
        """The picture's motion since the last keyframe, as the share of its width crossed a
        second (None: unknown, e.g. no flow or no capture times)."""
        moved, last = self.carry.last_motion, self._last_captured
        self._last_captured = captured
        if moved is None or last is None or captured <= last:
            return None
        return moved / width / (captured - last)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Dreams one frame: (H, W, 3) uint8 BGR in, the same out (the dream off: ``frame``)."""
        keyframe = self.keyframe(frame)
        if not self.enabled:
            return frame
        t3 = time.perf_counter()
        result = add_residual(frame, keyframe.residual)
        self.timings["upscale_composite"] = 1000.0 * (time.perf_counter() - t3)
        return result


def dream_image(
    image: np.ndarray,
    dream: ResolvedDream,
    *,
    step: DreamStep | None = None,
    max_side: int = 1280,
) -> np.ndarray:
    """Dreams a still photo in octaves, small to full, for the classic look.

    Each octave dreams the photo at one scale starting from it plus the detail dreamed so far
    (upscaled), so large patterns from small octaves gain fine detail at large ones.

    Args:
        image: (H, W, 3) uint8 BGR.
        dream: its channels, guide and settings' ``octaves``, ``octave_scale``,
            ``octave_steps``, ``step_size`` and ``seed`` are used.
        step: a built step (built from ``dream`` when None).
        max_side: the largest octave's long side; a bigger photo gets its detail upscaled.

    Returns:
        (H, W, 3) uint8 BGR.
    """
    step = step if step is not None else build_step(dream)
    config = dream.settings
    h, w = image.shape[:2]
    top = min(1.0, max_side / max(h, w))
    # The smallest octave stays within what the model's layers take (InceptionV3: 43 px).
    least = max(32, dream.spec.min_side(step.model.layers))
    base = image.astype(np.float32)
    detail: np.ndarray | None = None
    for octave in range(config.octaves - 1, -1, -1):
        scale = top / config.octave_scale**octave
        size = (max(least, round(w * scale)), max(least, round(h * scale)))
        octave_base = cv2.resize(base, size, interpolation=cv2.INTER_AREA)
        if detail is not None:
            detail = cv2.resize(detail, size, interpolation=cv2.INTER_LINEAR)
        start = octave_base if detail is None else np.clip(octave_base + detail, 0.0, 255.0)
        logger.debug("octave %d at %dx%d: %d steps", octave, *size, config.octave_steps)
        # In calls of at most about a second: Ctrl-C and SIGTERM, which Python handles between
        # calls, wait for one short call instead of the whole octave.
        dreamed, _ = run_steps_in_slices(
            step,
            start,
            config.octave_steps,
            step_size=config.step_size * 255.0,
            seed=(config.seed, octave),
            channels=dream.channels,
            guided=dream.guided,
        )
        detail = dreamed - octave_base
    assert detail is not None  # octaves >= 1, checked at the door
    detail = cv2.resize(detail, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(base + detail, 0.0, 255.0).astype(np.uint8)  # type: ignore[no-any-return]
