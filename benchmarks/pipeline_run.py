"""Sections 3 and 5 of ``fps.py``: the pipeline end to end (a file render), flicker, breakdown.

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from livedream.config import DreamConfig
from livedream.errors import UsageError
from livedream.media import Frame
from livedream.sources import Source, VideoFileSource
from settings import BURN_IN_FRAMES, Settings

if TYPE_CHECKING:
    from livedream.dream import Dreamer, DreamStep
    from livedream.pipeline import Stats


@dataclass
class PipelineFigures:
    """``RenderPipeline`` over the clip into a null sink, after the burn-in."""

    pipeline_fps: float  # outputs over the span from the first timed output to the last
    # From the median gap between outputs: what the pipeline does when nothing else runs.
    pipeline_fps_median: float
    frame_ms: float  # mean per-frame dream time (downscale, carry, K steps, upscale, composite)
    frame_ms_p50: float
    pipeline_frames: int
    pipeline_dropped: int
    pipeline_timed_out: bool


@dataclass
class LatencyFigures:
    """The live run of ``live.py``: capture-to-sink of every output frame it measured."""

    latency_ms_p50: float
    latency_ms_p95: float
    live_fps: float  # outputs per second
    live_frame_ms: float  # mean per-frame dream time
    live_dropped: int
    live_frames: int


@dataclass
class FlickerFigures:
    """``temporal.flicker`` of the default dreamer against one with no carry (blend 0)."""

    flicker_ratio: float  # flicker_default / flicker_blend0
    flicker_default: float
    flicker_blend0: float
    strength_default: float
    strength_blend0: float
    flicker_frames: int
    dreamer_frame_ms: float  # the default dreamer's mean, the first frame's trace included


@dataclass
class PipelineRun:
    output_times: list[float]  # perf_counter() when each output reached the sink
    stats: Stats
    timed_out: bool
    dreamer: Dreamer | None  # the pipeline's, once its thread ended


def run_pipeline(
    source: Source,
    config: DreamConfig,
    *,
    live: bool,
    outputs: int,
    pace_fps: float | None = None,
    max_frames: int | None = None,
) -> PipelineRun:
    """Runs the pipeline into a null sink until ``outputs`` frames came out or the input ended.

    In live mode the latencies and dream times of the first ``BURN_IN_FRAMES`` outputs are
    dropped from the stats (the model loads while the camera already delivers).
    """
    from livedream.dream import Dreamer
    from livedream.pipeline import Stats, make_pipeline
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    def make_dreamer() -> Dreamer:
        return Dreamer(resolve_here(config))

    stats = Stats()
    times: list[float] = []
    # Generous: model build plus 10 s a frame; only a broken run gets near it.
    deadline = time.perf_counter() + 120.0 + 10.0 * outputs
    timed_out = False
    pipeline = make_pipeline(
        source, make_dreamer, live=live, pace_fps=pace_fps, max_frames=max_frames, stats=stats
    )
    with pipeline, NullSink() as sink:
        while len(times) < outputs:
            if time.perf_counter() > deadline:
                timed_out = True
                break
            item = pipeline.next_frame(0.5)
            if item is None:
                if pipeline.ended:
                    break
                continue
            sink.write(item.image)
            times.append(time.perf_counter())
            if live and len(times) == BURN_IN_FRAMES:
                stats.latencies.clear()
                stats.dream_seconds.clear()
    if pipeline.error is not None:
        raise pipeline.error
    return PipelineRun(times, stats, timed_out, pipeline.dreamer)


def measure_pipeline(settings: Settings) -> tuple[PipelineFigures, DreamStep]:
    """File to null sink, losing nothing: output fps and per-frame dream time after a burn-in.

    Also returns the pipeline's compiled step, so the dream-only ceiling can be timed next to
    the pipeline run, under the same load.
    """
    wanted = BURN_IN_FRAMES + settings.frames
    run = run_pipeline(
        VideoFileSource(settings.clip),
        settings.dream_config(),
        live=False,
        outputs=wanted,
        max_frames=wanted,
    )
    times = run.output_times
    if len(times) < BURN_IN_FRAMES + 2:
        raise UsageError(
            f"{settings.clip} gave {len(times)} frames: need at least {BURN_IN_FRAMES + 2}"
        )
    span = times[-1] - times[BURN_IN_FRAMES]
    dream_s = list(run.stats.dream_seconds)[BURN_IN_FRAMES:]
    assert run.dreamer is not None  # frames came out, so the dreamer was built
    figures = PipelineFigures(
        pipeline_fps=(len(times) - 1 - BURN_IN_FRAMES) / span,
        pipeline_fps_median=1.0 / float(np.median(np.diff(times[BURN_IN_FRAMES:]))),
        frame_ms=1000.0 * float(np.mean(dream_s)),
        frame_ms_p50=1000.0 * float(np.median(dream_s)),
        pipeline_frames=len(times) - BURN_IN_FRAMES,
        pipeline_dropped=run.stats.dropped,
        pipeline_timed_out=run.timed_out,
    )
    return figures, run.dreamer.step


def measure_flicker(
    settings: Settings, frames: Sequence[Frame]
) -> tuple[FlickerFigures, DreamStep]:
    """The default dreamer against one without carry (blend 0), over the same frames."""
    from livedream.dream import Dreamer
    from livedream.resolve import resolve_here
    from livedream.temporal import flicker

    config = settings.dream_config()
    dreamer = Dreamer(resolve_here(config))
    plain = Dreamer(resolve_here(replace(config, blend=0.0)), step=dreamer.step)
    started = time.perf_counter()
    outputs = [dreamer(frame) for frame in frames]
    dreamer_ms = 1000.0 * (time.perf_counter() - started) / len(frames)
    outputs_plain = [plain(frame) for frame in frames]
    carried = flicker(frames, outputs)
    uncarried = flicker(frames, outputs_plain)
    ratio = carried["flicker"] / uncarried["flicker"] if uncarried["flicker"] > 0 else float("nan")
    figures = FlickerFigures(
        flicker_ratio=ratio,
        flicker_default=carried["flicker"],
        flicker_blend0=uncarried["flicker"],
        strength_default=carried["strength"],
        strength_blend0=uncarried["strength"],
        flicker_frames=len(frames),
        dreamer_frame_ms=dreamer_ms,
    )
    return figures, dreamer.step


def measure_breakdown(
    settings: Settings, frames: Sequence[Frame], step: DreamStep, decode_ms: float
) -> dict[str, float]:
    """ms per frame of each stage of ``Dreamer.__call__`` (its own ``timings``) and the sink."""
    from livedream.dream import Dreamer
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    dreamer = Dreamer(resolve_here(settings.dream_config()), step=step)
    sink = NullSink()
    parts: dict[str, list[float]] = {}
    for i, frame in enumerate(frames[: 8 if settings.quick else 16]):
        image = dreamer(frame)
        started = time.perf_counter()
        sink.write(image)
        sink_ms = 1000.0 * (time.perf_counter() - started)
        if i == 0:
            continue  # no carry yet on the first frame
        for key, ms in {**dreamer.timings, "sink": sink_ms}.items():
            parts.setdefault(key, []).append(ms)
    result = {"decode": decode_ms}
    result.update({key: float(np.mean(values)) for key, values in parts.items()})
    return result
