"""The live section of ``fps.py`` (issue 9): the clip played as a 30 fps camera, end to end.

The clip at its own size, paced at ``LIVE_PACE_FPS`` by a source that behaves as a camera
(``is_live``, its ``read()`` blocks until the next frame is due), through
``LivePipeline`` at the defaults into a null sink, for ``LIVE_SECONDS``
(``LIVE_SECONDS_QUICK`` with ``--quick``). Every figure counts from the first output frame that
carries a dream on. The dreamer is burnt in (its step traced) before the pipeline starts it,
as every other section's is.

Right after it, K steps alone are timed under the same load (``dream_efficiency_live``).
Then the same input frames, in the same order, are dreamed again in the main thread: each one
fresh (blend 0, no carry) and every one with the carry (the file mode), with the pipeline's own
step. ``temporal.flicker`` of the live outputs over that of each gives ``flicker_ratio_live``
and ``flicker_live_vs_carry`` (mirroring ``flicker_ratio`` of ``pipeline_run.py``).

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from livedream.media import Frame
from livedream.sources import Source
from machine import read_frames
from pipeline_run import LatencyFigures
from settings import LIVE_PACE_FPS, Settings
from step_cost import time_step

if TYPE_CHECKING:
    from livedream.config import DreamConfig
    from livedream.dream import Dreamer, DreamStep

LIVE_SECONDS = 20.0  # measured seconds of live output: ~600 frames, each dreamed twice after
LIVE_SECONDS_QUICK = 6.0
QUICK_COMPARE = 30  # --quick: frames dreamed again fresh and with the carry (<= 100)
FLICKER_WIDTH = 320  # temporal.flicker's default comparison width: outputs are kept at it
MODEL_WAIT = 180.0  # seconds the first keyframe may take (model build and trace)


@dataclass
class LiveFigures:
    """The live run from its first dreamed output frame on, and its flicker against dreams."""

    source_fps: float  # the pace asked of the camera-like source, not what capture achieved
    capture_fps: float  # what it achieved
    output_fps: float  # output frames per second
    dream_fps: float  # keyframes published per second
    # K steps alone, timed right after the live run (same load): what dream_fps could reach.
    dream_only_fps_near_live: float
    dream_efficiency_live: float  # dream_fps / dream_only_fps_near_live
    compositor_ms_p50: float  # composite() of each dreamed output frame
    compositor_ms_p95: float
    dream_age_ms_p50: float  # the keyframe's capture to its use, per dreamed output frame
    dream_age_ms_p95: float
    live_output_frames: int  # output frames measured
    undreamed_after_first_keyframe: int  # of those, frames that went out without a dream
    # A scene cut resets the compositor: frames go out raw until a keyframe of the new scene.
    cuts: int  # scene cuts the compositor saw (bikes.mp4 is a montage: 5 cuts per loop)
    undreamed_after_cuts: int  # undreamed frames between a cut and the next dreamed frame
    undreamed_outside_cuts: int  # undreamed frames no cut explains: should be none
    live_keyframes: int  # keyframes published during the measured span
    live_skipped: int  # frames the dream thread did not take (the compositor still did)
    flicker_ratio_live: float  # flicker(live) / flicker(each frame dreamed fresh, blend 0)
    flicker_live_vs_carry: float  # flicker(live) / flicker(every frame dreamed with the carry)
    flicker_live: float
    flicker_fresh: float
    flicker_carry: float
    strength_live: float  # mean |out - in| of the live outputs
    strength_baseline: float  # of the fresh dreams
    # Over the dreamed output frames alone: the dream's strength where a cut left none out.
    strength_live_dreamed: float
    strength_carry: float
    flicker_live_frames: int  # frames in the comparison


class CameraClip(Source):
    """Clip frames as a camera delivers them: ``read()`` blocks until the next frame is due.

    The clip plays forward, then backward, and so on: a camera never cuts, and a cut (a loop
    back to the first frame) would rightly reset the compositor. ``positions[i]`` is the clip
    frame the ``i``-th read returned, so the run's input frames are known after it.
    """

    is_live = True

    def __init__(self, frames: Sequence[Frame], fps: float) -> None:
        super().__init__(f"clip as a {fps:g} fps camera")
        if len(frames) < 2:
            raise ValueError(f"expected a clip of 2 frames or more, got {len(frames)}")
        self.height, self.width = frames[0].shape[:2]
        self.fps = fps
        self.positions: list[int] = []
        self._frames = frames
        self._started: float | None = None

    def _position(self, i: int) -> int:
        period = 2 * (len(self._frames) - 1)
        k = i % period
        return k if k < len(self._frames) else period - k

    def _read(self) -> Frame | None:
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        due = self._started + len(self.positions) / self.fps
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # a reader that fell far behind: the camera does not catch up
            self._started = now - len(self.positions) / self.fps
        position = self._position(len(self.positions))
        self.positions.append(position)
        return self._frames[position]


@dataclass
class _Run:
    """What the consumer saw of the live run, from the first dreamed output on."""

    indices: list[int]  # each output frame's capture index
    dreamed: list[bool]  # whether it carried a dream
    outputs: list[np.ndarray]  # each output frame at FLICKER_WIDTH wide
    out_times: list[float]
    latencies: list[float]  # seconds, capture to sink
    compositor: list[float]  # seconds, dreamed frames only
    ages: list[float]  # seconds, dreamed frames only
    undreamed: int
    undreamed_after_cuts: int
    cuts: int
    keyframes: int  # published during the measured span
    dream_seconds: list[float]  # per keyframe, during the measured span
    captured: int  # frames captured during the measured span
    skipped: int
    dropped: int


def _small(frame: np.ndarray) -> np.ndarray:
    """The frame as ``temporal.flicker`` compares it (it resizes nothing already that wide)."""
    h, w = frame.shape[:2]
    size = (FLICKER_WIDTH, max(2, round(h * FLICKER_WIDTH / w)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # type: ignore[no-any-return]


def _live_run(
    source: CameraClip,
    config: DreamConfig,
    seconds: float,
    *,
    step: DreamStep | None = None,
    settle: float = 0.0,
) -> tuple[_Run, Dreamer]:
    """Runs the pipeline live for ``seconds`` after its first dreamed output frame (and
    ``settle`` seconds more before that, not measured: an automatic size finds its rung).
    ``step``: a built step to share (one compiled function per dream size); returns the run
    and the dreamer."""
    from livedream.dream import Dreamer
    from livedream.pipeline import LivePipeline, Stats
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    def make_dreamer() -> Dreamer:
        dreamer = Dreamer(resolve_here(config), step=step)
        w, h = dreamer.sizer.size_for(source.width, source.height)
        blank = np.zeros((h, w, 3), np.float32)
        dreamer.step(blank, steps=config.steps, step_size=config.step_size * 255.0)  # trace
        return dreamer

    stats = Stats()
    run = _Run([], [], [], [], [], [], [], 0, 0, 0, 0, [], 0, 0, 0)
    start: tuple[int, int, int, int] | None = None  # dreamed, captured, skipped, dropped
    cuts_seen = 0  # the compositor's cut count at the last dreamed frame
    settle_until = 0.0
    end_at = time.perf_counter() + MODEL_WAIT
    pipeline = LivePipeline(source, make_dreamer, stats=stats)
    with pipeline, NullSink() as sink:
        while time.perf_counter() < end_at:
            item = pipeline.next_frame(0.5)
            if item is None:
                if pipeline.ended:
                    break
                continue
            sink.write(item.image)
            done = time.perf_counter()
            if start is None:
                if not item.dreamed:
                    continue
                if settle > 0:
                    settle_until, settle = done + settle, 0.0
                if done < settle_until:
                    continue
                end_at = done + seconds
                start = (stats.dreamed, stats.captured, stats.skipped, stats.dropped)
                first_cuts = cuts_seen = pipeline.compositor.cuts
            run.indices.append(item.index)
            run.dreamed.append(item.dreamed)
            run.outputs.append(_small(item.image))
            run.out_times.append(done)
            run.latencies.append(done - item.captured)
            if item.dreamed:
                run.compositor.append(stats.compositor_seconds[-1])
                run.ages.append(stats.dream_ages[-1])
                cuts_seen = pipeline.compositor.cuts
            else:
                run.undreamed += 1
                run.undreamed_after_cuts += pipeline.compositor.cuts > cuts_seen
        run.cuts = pipeline.compositor.cuts - first_cuts if start is not None else 0
        # Read before stop(): the dream thread may still publish while the threads wind down.
        end = (stats.dreamed, stats.captured, stats.skipped, stats.dropped)
        dream_seconds = list(stats.dream_seconds)
    if pipeline.error is not None:
        raise pipeline.error
    if start is None or len(run.out_times) < 2:
        raise RuntimeError(f"the live run dreamed no frame within {MODEL_WAIT:g} s")
    run.keyframes, run.captured, run.skipped, run.dropped = (
        e - s for e, s in zip(end, start, strict=True)
    )
    run.dream_seconds = dream_seconds[-run.keyframes :] if run.keyframes else []
    assert pipeline.dreamer is not None
    return run, pipeline.dreamer


def _dreamed_again(dreamer: Dreamer, frames: Sequence[Frame]) -> list[np.ndarray]:
    """Each of ``frames`` dreamed in order by ``dreamer``, kept at ``FLICKER_WIDTH``."""
    return [_small(dreamer(frame)) for frame in frames]


def _ms(values: Sequence[float], q: float) -> float:
    return 1000.0 * float(np.quantile(values, q)) if len(values) else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def measure_live(settings: Settings) -> tuple[LiveFigures, LatencyFigures, DreamStep]:
    """The live run and its flicker comparisons; also the latency keys, and the step used."""
    from livedream.dream import Dreamer
    from livedream.resolve import resolve_here
    from livedream.temporal import flicker

    clip, _ = read_frames(settings.clip, 10_000)
    source = CameraClip(clip, LIVE_PACE_FPS)
    seconds = LIVE_SECONDS_QUICK if settings.quick else LIVE_SECONDS
    run, dreamer = _live_run(source, settings.dream_config(), seconds)
    step = dreamer.step
    w, h = settings.dream_size
    image = cv2.resize(clip[0], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    near_ms = min(time_step(step, 0, 3 if settings.quick else 5, settings, image))
    near_fps = 1000.0 / (settings.steps * near_ms)

    span = run.out_times[-1] - run.out_times[0]
    compared = QUICK_COMPARE if settings.quick else len(run.indices)
    inputs = [clip[source.positions[i]] for i in run.indices[:compared]]
    outputs = run.outputs[:compared]
    config = settings.dream_config()
    fresh = _dreamed_again(Dreamer(resolve_here(replace(config, blend=0.0)), step=step), inputs)
    carry = _dreamed_again(Dreamer(resolve_here(config), step=step), inputs)
    small_inputs = [_small(frame) for frame in inputs]
    live_f = flicker(small_inputs, outputs, width=FLICKER_WIDTH)
    fresh_f = flicker(small_inputs, fresh, width=FLICKER_WIDTH)
    carry_f = flicker(small_inputs, carry, width=FLICKER_WIDTH)

    dreamed_strengths = [
        float(np.abs(out.astype(np.float32) - frame.astype(np.float32)).mean())
        for out, frame, dreamed in zip(outputs, small_inputs, run.dreamed, strict=False)
        if dreamed
    ]
    output_fps = (len(run.out_times) - 1) / span
    figures = LiveFigures(
        source_fps=LIVE_PACE_FPS,
        capture_fps=run.captured / span,
        output_fps=output_fps,
        dream_fps=run.keyframes / span,
        dream_only_fps_near_live=near_fps,
        dream_efficiency_live=run.keyframes / span / near_fps,
        compositor_ms_p50=_ms(run.compositor, 0.5),
        compositor_ms_p95=_ms(run.compositor, 0.95),
        dream_age_ms_p50=_ms(run.ages, 0.5),
        dream_age_ms_p95=_ms(run.ages, 0.95),
        live_output_frames=len(run.out_times),
        undreamed_after_first_keyframe=run.undreamed,
        cuts=run.cuts,
        undreamed_after_cuts=run.undreamed_after_cuts,
        undreamed_outside_cuts=run.undreamed - run.undreamed_after_cuts,
        live_keyframes=run.keyframes,
        live_skipped=run.skipped,
        flicker_ratio_live=_ratio(live_f["flicker"], fresh_f["flicker"]),
        flicker_live_vs_carry=_ratio(live_f["flicker"], carry_f["flicker"]),
        flicker_live=live_f["flicker"],
        flicker_fresh=fresh_f["flicker"],
        flicker_carry=carry_f["flicker"],
        strength_live=live_f["strength"],
        strength_baseline=fresh_f["strength"],
        strength_live_dreamed=float(np.mean(dreamed_strengths or [float("nan")])),
        strength_carry=carry_f["strength"],
        flicker_live_frames=len(inputs),
    )
    latency = LatencyFigures(
        latency_ms_p50=_ms(run.latencies, 0.5),
        latency_ms_p95=_ms(run.latencies, 0.95),
        live_fps=output_fps,
        live_frame_ms=1000.0 * float(np.mean(run.dream_seconds or [float("nan")])),
        live_dropped=run.dropped,
        live_frames=len(run.latencies),
    )
    return figures, latency, step
