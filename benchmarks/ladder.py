"""The ladder section of ``fps.py`` (issue 17): fixed dream sizes against the automatic one.

The clip plays as a 4:3 webcam (its frames resized to ``CAMERA``, as the fixed default's
320x240 dream squashes them too) at 30 fps, live, into a null sink:

1. ``RUNGS`` (``RUNGS_QUICK`` with ``--quick``): a few fixed (dream size, steps), each for the
   live span, then its outputs compared with the same frames dreamed fresh (blend 0) at its
   size: dream fps, ``dream_only_fps`` (the steps alone at that size, timed right after, under
   the same load), ``strength_live``, ``flicker_ratio_live``;
2. the automatic size (``--dream-size auto``) at ``--dream-rate``, run in the middle of the
   rungs so that a noisy stretch of the host does not decide alone: it settles for
   ``SETTLE_S`` first, then the same figures over the same span, the size it holds at the end,
   the lowest output fps of any 1 s window (frames keep going out while the size changes);
3. a still picture (the clip's first frame) played live with the automatic size for
   ``STILL_S``: the size it holds then (a still picture dreams at least as large).

``auto_vs_best_rung``: ``strength_live_auto`` over the best rung's ``strength_live``, the best
rung being the strongest with ``flicker_ratio_live`` <= 0.6 and a short side >= 120.
One built step serves every size (one compiled function per size). Not run on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from live import (
    LIVE_SECONDS,
    LIVE_SECONDS_QUICK,
    CameraClip,
    _dreamed_again,
    _live_run,
    _ms,
    _ratio,
    _Run,
    _small,
)
from livedream.config import DreamConfig
from livedream.media import Frame
from machine import read_frames
from settings import LIVE_PACE_FPS, Settings
from step_cost import time_step

if TYPE_CHECKING:
    from livedream.dream import Dreamer, DreamStep

CAMERA = (640, 480)  # a webcam's shape: the ladder of a 4:3 frame holds the default's 320x240
# (dream size, steps): the smallest sizes a webcam dream goes to, up to the fixed default's.
RUNGS: tuple[tuple[tuple[int, int], int], ...] = (
    ((128, 96), 2),
    ((160, 120), 2),
    ((200, 150), 2),
    ((250, 188), 2),
    ((320, 240), 1),
    ((320, 240), 2),
)
# --quick: the four smallest (the fixed default's 320x240 x 2 is the live section's run).
RUNGS_QUICK = RUNGS[:4]
AUTO_AFTER = 3  # the automatic run goes after this many rungs: in the middle of them
AUTO_AFTER_QUICK = 2
SETTLE_S = 8.0  # seconds the automatic size has to find its rung before it is measured
STILL_S = 10.0  # the still picture's run
COMPARED = 60  # frames compared with fresh dreams, the last of each run (30 with --quick)
COMPARED_QUICK = 30
BEST_FLICKER = 0.6  # a rung flickering more than this is not a candidate for the best
BEST_SHORT_SIDE = 120  # nor one whose dream is this small: detail lost


@dataclass
class Rung:
    """One fixed (size, steps), live."""

    size: list[int]  # (w, h)
    steps: int
    dream_fps: float  # keyframes a second, live
    dream_only_fps: float  # the steps alone at this size, right after (same load)
    strength_live: float  # mean |out - in| of the live outputs (320 wide)
    strength_fresh: float  # of the same frames dreamed fresh at this size
    flicker_ratio_live: float  # flicker(live) / flicker(fresh)
    compositor_ms_p95: float


@dataclass
class LadderFigures:
    """The ladder and the automatic size, side by side in one run."""

    ladder: list[Rung]
    dream_rate_target: float
    auto_dream_size: list[int]  # the size the automatic run held at its end
    auto_size_changes: int
    dream_fps_auto: float
    dream_only_fps_auto: float  # the steps alone at the size held, right after
    strength_live_auto: float
    strength_fresh_auto: float
    flicker_ratio_live_auto: float
    compositor_ms_p95_auto: float
    undreamed_outside_cuts_auto: int
    output_fps_auto: float
    output_fps_min_1s_auto: float  # the lowest output fps of any 1 s window
    best_rung: int  # index into ladder; -1 when none qualifies
    auto_vs_best_rung: float
    auto_dream_size_still: list[int]  # a still picture's size after STILL_S


def _camera_frames(settings: Settings) -> list[Frame]:
    clip, _ = read_frames(settings.clip, 10_000)
    return [cv2.resize(frame, CAMERA, interpolation=cv2.INTER_AREA) for frame in clip]


def _min_window_fps(times: Sequence[float], window: float = 1.0) -> float:
    """The fewest output frames in any ``window`` seconds of the run, per second."""
    if len(times) < 2 or times[-1] - times[0] < window:
        return float("nan")
    counts, j = [], 0
    for i, start in enumerate(times):
        if start + window > times[-1]:
            break
        while j < len(times) and times[j] < start + window:
            j += 1
        counts.append(j - i)
    return min(counts) / window


def _compare(
    run: _Run,
    source: CameraClip,
    frames: Sequence[Frame],
    config: DreamConfig,
    step: DreamStep,
    compared: int,
) -> tuple[float, float, float]:
    """(strength live, strength fresh, flicker ratio) over the run's last ``compared`` frames;
    the fresh dreams at ``config``'s fixed size."""
    from livedream.dream import Dreamer
    from livedream.resolve import resolve_here
    from livedream.temporal import flicker

    inputs = [frames[source.positions[i]] for i in run.indices[-compared:]]
    outputs = run.outputs[-compared:]
    fresh = _dreamed_again(Dreamer(resolve_here(replace(config, blend=0.0)), step=step), inputs)
    small_inputs = [_small(frame) for frame in inputs]
    live_f = flicker(small_inputs, outputs)
    fresh_f = flicker(small_inputs, fresh)
    return live_f["strength"], fresh_f["strength"], _ratio(live_f["flicker"], fresh_f["flicker"])


def _dream_only_fps(
    step: DreamStep, settings: Settings, frames: Sequence[Frame], size: tuple[int, int], steps: int
) -> float:
    image = cv2.resize(frames[0], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    ms = min(time_step(step, 1, 3, replace(settings, steps=steps), image))
    return 1000.0 / (steps * ms)


def _fixed(settings: Settings, size: tuple[int, int], steps: int) -> DreamConfig:
    return settings.dream_config(dream_size=size, steps=steps, auto_size=False)


def _rung(
    settings: Settings,
    frames: Sequence[Frame],
    size: tuple[int, int],
    steps: int,
    step: DreamStep | None,
    seconds: float,
    compared: int,
) -> tuple[Rung, DreamStep]:
    config = _fixed(settings, size, steps)
    source = CameraClip(frames, LIVE_PACE_FPS)
    run, dreamer = _live_run(source, config, seconds, step=step)
    span = run.out_times[-1] - run.out_times[0]
    only = _dream_only_fps(dreamer.step, settings, frames, size, steps)
    strength, fresh, ratio = _compare(run, source, frames, config, dreamer.step, compared)
    rung = Rung(
        size=list(size),
        steps=steps,
        dream_fps=run.keyframes / span,
        dream_only_fps=only,
        strength_live=strength,
        strength_fresh=fresh,
        flicker_ratio_live=ratio,
        compositor_ms_p95=_ms(run.compositor, 0.95),
    )
    return rung, dreamer.step


def best_rung(ladder: Sequence[Rung]) -> int:
    """The strongest rung that neither flickers more than ``BEST_FLICKER`` nor dreams below
    ``BEST_SHORT_SIDE``; -1 when none does."""
    candidates = [
        i
        for i, r in enumerate(ladder)
        if r.flicker_ratio_live <= BEST_FLICKER and min(r.size) >= BEST_SHORT_SIDE
    ]
    return max(candidates, key=lambda i: ladder[i].strength_live, default=-1)


def measure_ladder(settings: Settings) -> LadderFigures:
    """The rungs, the automatic run in their middle, then the still picture (see above)."""
    frames = _camera_frames(settings)
    seconds = LIVE_SECONDS_QUICK if settings.quick else LIVE_SECONDS / 2
    compared = COMPARED_QUICK if settings.quick else COMPARED
    rate = DreamConfig().dream_rate
    auto_config = settings.dream_config(dream_size=None, auto_size=True, dream_rate=rate)
    ladder: list[Rung] = []
    step: DreamStep | None = None
    auto = None
    rungs, auto_after = (RUNGS_QUICK, AUTO_AFTER_QUICK) if settings.quick else (RUNGS, AUTO_AFTER)
    for i, (size, steps) in enumerate(rungs):
        if i == auto_after:
            auto = _auto(settings, frames, auto_config, step, seconds)
        rung, step = _rung(settings, frames, size, steps, step, seconds, compared)
        ladder.append(rung)
    assert auto is not None and step is not None
    run, source, dreamer, auto_only_fps = auto
    held = dreamer.sizer.size_for(*CAMERA)
    span = run.out_times[-1] - run.out_times[0]
    held_config = _fixed(settings, held, settings.steps)
    strength, fresh, ratio = _compare(run, source, frames, held_config, step, compared)
    best = best_rung(ladder)
    governor = dreamer.sizer.governor
    still = _still_size(frames[0], auto_config, step)
    return LadderFigures(
        ladder=ladder,
        dream_rate_target=rate,
        auto_dream_size=list(held),
        auto_size_changes=governor.changes if governor is not None else 0,
        dream_fps_auto=run.keyframes / span,
        dream_only_fps_auto=auto_only_fps,
        strength_live_auto=strength,
        strength_fresh_auto=fresh,
        flicker_ratio_live_auto=ratio,
        compositor_ms_p95_auto=_ms(run.compositor, 0.95),
        undreamed_outside_cuts_auto=run.undreamed - run.undreamed_after_cuts,
        output_fps_auto=(len(run.out_times) - 1) / span,
        output_fps_min_1s_auto=_min_window_fps(run.out_times),
        best_rung=best,
        auto_vs_best_rung=_ratio(strength, ladder[best].strength_live) if best >= 0 else 0.0,
        auto_dream_size_still=list(still),
    )


def _auto(
    settings: Settings,
    frames: Sequence[Frame],
    config: DreamConfig,
    step: DreamStep | None,
    seconds: float,
) -> tuple[_Run, CameraClip, Dreamer, float]:
    """The automatic size live, after ``SETTLE_S`` to find its rung; the steps alone at the
    size it holds, timed right after (same load)."""
    source = CameraClip(frames, LIVE_PACE_FPS)
    run, dreamer = _live_run(source, config, seconds, step=step, settle=SETTLE_S)
    held = dreamer.sizer.size_for(*CAMERA)
    return run, source, dreamer, _dream_only_fps(dreamer.step, settings, frames, held, config.steps)


def _still_size(frame: Frame, config: DreamConfig, step: DreamStep) -> tuple[int, int]:
    """The size the automatic dream holds on a still picture after ``STILL_S``."""
    source = CameraClip([frame, frame], LIVE_PACE_FPS)
    _, dreamer = _live_run(source, config, STILL_S, step=step)
    return dreamer.sizer.size_for(*CAMERA)
