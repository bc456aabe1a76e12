"""A video frame dreamed deep: in octaves, small to full, on top of the carried dream.

As the classic video tools (DeepDreamVideo, DeepDreamAnim) do: the frame plus the previous
frame's dream (warped along the optical flow, ``temporal.FlowCarry``) is the octaves' base;
each octave dreams it at one scale plus the detail dreamed so far, so large patterns from
small octaves gain fine detail at large ones. The steps run in compiled calls of at most
~1 s (``step.run_steps_in_slices``) so a stop request is answered within a second.

The jitter of step i of frame f depends on (seed, f, i) only: a frame dreams the same in any
chunk, on any worker, however its steps are sliced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from livedream.compositor import add_residual
from livedream.config import DeepConfig, DreamConfig
from livedream.resolve import ResolvedDream
from livedream.step import DreamStep, run_steps_in_slices
from livedream.temporal import FlowCarry, to_gray

# The smallest octave's side, in pixels: below it the network's pooling sees no shapes (and
# never below what the dreamed layers take: InceptionV3's mixed layers need 43-75 px).
MIN_OCTAVE_SIDE = 16


@dataclass(frozen=True)
class OctavePlan:
    """How each frame is dreamed: ``octaves`` scales of ``steps`` steps each.

    Attributes:
        octaves: scales, the smallest ``scale ** (octaves - 1)`` times below the dream size.
        steps: gradient steps per octave.
        scale: the ratio between neighbouring octaves.
    """

    octaves: int
    steps: int
    scale: float

    @classmethod
    def of(cls, settings: DreamConfig, deep: DeepConfig) -> OctavePlan:
        """``--octave-steps`` per octave when given, else ``--steps`` shared out evenly; the
        dream's ``--octave-scale`` between octaves."""
        per_octave = deep.octave_steps or max(1, round(settings.steps / deep.octaves))
        return cls(deep.octaves, per_octave, settings.octave_scale)

    @property
    def total_steps(self) -> int:
        """Steps per frame, all octaves together."""
        return self.octaves * self.steps


def dream_octaves(
    step: DreamStep,
    start: np.ndarray,
    plan: OctavePlan,
    *,
    step_size: float,
    seed: tuple[int, int],
    channels: tuple[tuple[str, tuple[int, ...]], ...] = (),
    guided: bool = False,
    least: int = MIN_OCTAVE_SIDE,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``start`` dreamed in ``plan.octaves`` octaves, small to full.

    Args:
        start: (h, w, 3) float32 BGR in [0, 255]: the frame plus the carried dream.
        step_size: in 0..255 pixel units per unit-std gradient.
        seed: (seed, frame number).
        least: the smallest octave side, in pixels.
        should_stop: asked between compiled calls; True ends the dream early.

    Returns:
        (h, w, 3) float32 BGR in [0, 255].
    """
    h, w = start.shape[:2]
    detail: np.ndarray | None = None  # what the octaves so far added, at the last octave's size
    for k in range(plan.octaves):
        shrink = plan.scale ** (plan.octaves - 1 - k)
        size = (max(least, round(w / shrink)), max(least, round(h / shrink)))
        base = start if size == (w, h) else cv2.resize(start, size, interpolation=cv2.INTER_AREA)
        if detail is not None and detail.shape[:2] != base.shape[:2]:
            detail = cv2.resize(detail, size, interpolation=cv2.INTER_LINEAR)
        image = base if detail is None else np.clip(base + detail, 0.0, 255.0)
        dreamed, _ = run_steps_in_slices(
            step,
            image,
            plan.steps,
            step_size=step_size,
            seed=seed,
            channels=channels,
            guided=guided,
            first_step=k * plan.steps,
            should_stop=should_stop,
        )
        detail = dreamed - base
    assert detail is not None  # octaves >= 1
    if detail.shape[:2] != (h, w):
        detail = cv2.resize(detail, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(start + detail, 0.0, 255.0)  # type: ignore[no-any-return]


class FrameDreamer:
    """Dreams the frames of one shot in order, each in octaves on top of the carried dream.

    Frame in: (H, W, 3) uint8 BGR; frame out: the same, the dream residual upscaled and added
    to the full frame (it keeps the input's sharpness), as the render pipeline does.

    Args:
        dream: the resolved dream (its settings: size, strength, blend, flow, seed, steps).
        deep: the octaves asked for.
        step: a built step (built from ``dream`` when None).
    """

    def __init__(
        self, dream: ResolvedDream, deep: DeepConfig, *, step: DreamStep | None = None
    ) -> None:
        from livedream.step import build_step

        self.dream = dream
        self.step = step if step is not None else build_step(dream)
        self.plan = OctavePlan.of(dream.settings, deep)
        self.least = max(MIN_OCTAVE_SIDE, dream.spec.min_side(self.step.model.layers))
        self.carry = FlowCarry()

    def reset(self) -> None:
        """A new shot (or a chunk's first frame): nothing carried."""
        self.carry.reset()

    def __call__(
        self, frame: np.ndarray, index: int, *, should_stop: Callable[[], bool] | None = None
    ) -> np.ndarray:
        """Frame number ``index`` of the input, dreamed: (H, W, 3) uint8 BGR."""
        settings = self.dream.settings
        h, w = frame.shape[:2]
        size = self.dream.size.size_for(w, h)
        small8 = frame if (w, h) == size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        gray = to_gray(small8)
        small = small8.astype(np.float32)  # (h, w, 3) float32 BGR in [0, 255]
        carried = self.carry.carry(gray, blend=settings.blend, flow=settings.flow)
        start = small if carried is None else np.clip(small + carried, 0.0, 255.0)
        dreamed = dream_octaves(
            self.step,
            start,
            self.plan,
            step_size=settings.step_size * 255.0,
            seed=(settings.seed, index),
            channels=self.dream.channels,
            guided=self.dream.guided,
            least=self.least,
            should_stop=should_stop,
        )
        residual = dreamed - small  # (h, w, 3) float32: what the dream added
        self.carry.update(gray, residual)
        return add_residual(frame, residual)
