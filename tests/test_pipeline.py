"""The streaming pipeline: live sources stay live, files lose nothing, and the preview's keys
change the dream. Real model (vgg16_hed) at small sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DREAM
from helpers import WriteVideo

from livedream.config import DreamConfig
from livedream.dream import Dreamer, DreamStep
from livedream.pipeline import Pipeline, TimedFrame
from livedream.resolve import resolve_here
from livedream.sources import SyntheticSource, VideoFileSource

CONFIG = DreamConfig(**{**SHARED_DREAM.__dict__, "dream_size": (160, 120)})


@pytest.fixture
def step(shared_step: DreamStep) -> DreamStep:
    return shared_step


def make_dreamer(step: DreamStep) -> Callable[[], Dreamer]:
    """The pipeline's dreamer on the shared ``step``; the dream is resolved here, not in the
    dream thread."""
    dream = resolve_here(CONFIG)
    return lambda: Dreamer(dream, step=step)


def collect(pipeline: Pipeline, count: int, timeout: float = 60.0) -> list[TimedFrame]:
    import time

    frames: list[TimedFrame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline and not pipeline.ended:
        frame = pipeline.next_frame(0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def test_live_source_faster_than_the_dream_outputs_every_frame_in_order(
    step: DreamStep,
) -> None:
    source = SyntheticSource(width=320, height=240, fps=100.0)
    frames: list[TimedFrame] = []
    with Pipeline(
        source,
        make_dreamer(step),
        live=True,
        pace_fps=100.0,
        wait_for_dream=False,
    ) as pipeline:
        # Until 40 frames after the first dreamed one (the step compiles on its first call).
        for frame in pipeline:
            frames.append(frame)
            if sum(f.dreamed for f in frames) >= 40 or len(frames) > 3000:
                break
    stats = pipeline.stats
    assert [f.index for f in frames] == list(range(len(frames)))  # every frame, in order
    assert stats.dropped == 0
    assert 0 < stats.dreamed < stats.captured  # the dream refreshed behind, skipping frames
    assert stats.skipped > 0
    first = next(i for i, f in enumerate(frames) if f.dreamed)
    assert all(f.dreamed for f in frames[first:])  # from the first keyframe on, all dreamed
    for f in frames[first:]:
        raw = source.frame_at(f.index)
        assert np.abs(f.image.astype(int) - raw).mean() > 0.5  # a dream on each, not the raw


def test_file_to_file_pipeline_loses_no_frame(
    step: DreamStep, tmp_path: Path, write_video: WriteVideo
) -> None:
    clip = write_video(tmp_path / "clip.avi", frames=24, width=160, height=120)
    source = VideoFileSource(clip)
    with Pipeline(source, make_dreamer(step), live=False) as pipeline:
        frames = collect(pipeline, 100)
    assert pipeline.ended
    assert [f.index for f in frames] == list(range(24))
    assert pipeline.stats.dropped == 0
    assert all(f.image.shape == (120, 160, 3) for f in frames)


def test_keys_change_what_they_say_in_the_dream(step: DreamStep) -> None:
    from livedream.controls import Controls
    from livedream.preview import KeyHandler

    dream = resolve_here(CONFIG)
    controls = Controls.from_dream(dream)
    presets = dream.spec.presets
    keys = KeyHandler(controls, list(presets))
    dreamer = Dreamer(dream, step=step)
    frame = SyntheticSource(width=160, height=120).read()
    assert frame is not None

    def press(key: str) -> None:
        keys.handle(ord(key))
        dreamer.apply(controls)

    press("]")
    assert dreamer.steps == CONFIG.steps + 1
    press("[")
    press("[")
    assert dreamer.steps == max(1, CONFIG.steps - 1)
    press("=")
    assert dreamer.step_size == pytest.approx(CONFIG.step_size * 1.25)
    press("-")
    assert dreamer.step_size == pytest.approx(CONFIG.step_size)
    press("f")
    assert dreamer.flow is False
    press(" ")
    assert dreamer(frame) is frame  # dream off: the camera as it is
    press(" ")
    for _ in range(4):
        deep = dreamer(frame)
    press("r")  # the carried dream is dropped: the next frame is as weak as a first one
    fresh = dreamer(frame)
    assert np.abs(fresh.astype(int) - frame).mean() < np.abs(deep.astype(int) - frame).mean()
    before = dreamer.layers
    press("l")
    assert dreamer.layers != before
    assert dreamer.layers in presets
    press("h")
    assert keys.hud is True
    press("q")
    assert keys.quit is True


def test_mirror_key_flips_the_captured_frames(step: DreamStep) -> None:
    from dataclasses import replace

    from livedream.controls import Controls
    from livedream.preview import KeyHandler

    source = SyntheticSource(width=160, height=120, fps=30.0, frames=3, live=False)
    expected = [source.frame_at(i)[:, ::-1] for i in range(3)]
    controls = Controls.from_dream(resolve_here(CONFIG))
    controls = replace(controls, enabled=False)  # dream off: frames pass as captured
    KeyHandler(controls, [CONFIG.layers]).handle(ord("m"))  # the preview's mirror key
    with Pipeline(source, make_dreamer(step), live=False, controls=controls) as pipeline:
        frames = collect(pipeline, 10)
    assert len(frames) == 3
    for frame, flipped in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame.image, flipped)
