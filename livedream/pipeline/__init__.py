"""Threads and queues: capture -> dream -> compositor -> the caller's sinks.

Two pipelines over one capture core (``core.Pipeline``: the capture and dream threads, the
queues, the controls, the dream):

- ``LivePipeline`` (``live.py``): every captured frame goes out at once, the dream refreshed
  behind it; the compositor runs in the thread that calls ``next_frame()``.
- ``RenderPipeline`` (``render.py``): a file rendered to a file, nothing lost or reordered;
  the compositor runs in the dream thread.

``make_pipeline`` picks one from ``live`` (the run plan's), so a run decides once.
"""

from __future__ import annotations

from collections.abc import Callable

from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.faces import FaceTracker
from livedream.pipeline.core import CAPTURE_THREAD, DREAM_THREAD, Pipeline, apply_controls
from livedream.pipeline.live import LivePipeline
from livedream.pipeline.render import RenderPipeline
from livedream.sources import Source
from livedream.stats import RateMeter, Stats, TimedFrame

__all__ = [
    "CAPTURE_THREAD",
    "DREAM_THREAD",
    "LivePipeline",
    "Pipeline",
    "RateMeter",
    "RenderPipeline",
    "Stats",
    "TimedFrame",
    "apply_controls",
    "make_pipeline",
]


def make_pipeline(
    source: Source,
    make_dreamer: Callable[[], Dreamer],
    *,
    live: bool,
    pace_fps: float | None = None,
    controls: Controls | None = None,
    max_frames: int | None = None,
    stats: Stats | None = None,
    faces: FaceTracker | None = None,
    dream_every: int = 1,
) -> Pipeline:
    """A ``LivePipeline`` when ``live``, else a ``RenderPipeline``; the arguments as theirs
    (``dream_every`` is a render's only: a live run dreams the newest frame it can)."""
    if live:
        return LivePipeline(
            source,
            make_dreamer,
            pace_fps=pace_fps,
            controls=controls,
            max_frames=max_frames,
            stats=stats,
            faces=faces,
        )
    return RenderPipeline(
        source,
        make_dreamer,
        pace_fps=pace_fps,
        controls=controls,
        max_frames=max_frames,
        stats=stats,
        faces=faces,
        dream_every=dream_every,
    )
