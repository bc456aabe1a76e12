"""The streaming pipelines: live sources stay live, files lose nothing, the preview's keys
change the dream, a reset is taken once, and each pipeline composites in the thread it names.
Real model (vgg16_hed) at small sizes."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DREAM
from helpers import WriteVideo

from livedream.compositor import Compositor
from livedream.config import DreamConfig
from livedream.controls import Controls
from livedream.dream import Dreamer, DreamStep
from livedream.pipeline import (
    DREAM_THREAD,
    LivePipeline,
    Pipeline,
    RenderPipeline,
    TimedFrame,
    apply_controls,
    make_pipeline,
)
from livedream.resolve import resolve_here
from livedream.sources import SyntheticSource, VideoFileSource

CONFIG = DreamConfig(**{**SHARED_DREAM.__dict__, "dream_size": (160, 120)})


@pytest.fixture
def step(shared_step: DreamStep) -> DreamStep:
    return shared_step


def make_dreamer(step: DreamStep, config: DreamConfig = CONFIG) -> Callable[[], Dreamer]:
    """The pipeline's dreamer on the shared ``step``; the dream is resolved here, not in the
    dream thread."""
    dream = resolve_here(config)
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


def test_live_source_faster_than_the_dream_outputs_its_frames_in_order(
    step: DreamStep,
) -> None:
    source = SyntheticSource(width=320, height=240, fps=100.0)
    frames: list[TimedFrame] = []
    with LivePipeline(source, make_dreamer(step), pace_fps=100.0, wait_for_dream=False) as pipeline:
        # Until 40 frames after the first dreamed one (the step compiles on its first call).
        for frame in pipeline:
            frames.append(frame)
            if sum(f.dreamed for f in frames) >= 40 or len(frames) > 3000:
                break
    stats = pipeline.stats
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))  # in order, none twice
    # A frame that did not go out was pushed out by newer ones (this caller fell behind, on a
    # busy host) and counted: none is lost unseen, and the dream never held the output back.
    assert indices[-1] + 1 - len(frames) <= stats.dropped
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
    # Every frame goes out whatever the dream's size: the session's 64x48 dream is enough.
    with RenderPipeline(source, make_dreamer(step, SHARED_DREAM)) as pipeline:
        frames = collect(pipeline, 100)
    assert pipeline.ended
    assert [f.index for f in frames] == list(range(24))
    assert pipeline.stats.dropped == 0
    assert all(f.image.shape == (120, 160, 3) for f in frames)


def test_keys_change_what_they_say_in_the_dream(step: DreamStep) -> None:
    from livedream.preview import KeyHandler

    dream = resolve_here(CONFIG)
    controls = Controls.from_dream(dream)
    presets = dream.spec.presets
    keys = KeyHandler(controls, list(presets))
    dreamer = Dreamer(dream, step=step)
    frame = SyntheticSource(width=160, height=120).read()
    assert frame is not None

    def press(key: str) -> None:  # as the dream thread takes the keys before a frame
        keys.handle(ord(key))
        apply_controls(controls, dreamer, Compositor(), 0.0)

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

    from livedream.preview import KeyHandler

    source = SyntheticSource(width=160, height=120, fps=30.0, frames=3, live=False)
    expected = [source.frame_at(i)[:, ::-1] for i in range(3)]
    controls = Controls.from_dream(resolve_here(CONFIG))
    controls = replace(controls, enabled=False)  # dream off: frames pass as captured
    KeyHandler(controls, [CONFIG.layers]).handle(ord("m"))  # the preview's mirror key
    with RenderPipeline(source, make_dreamer(step), controls=controls) as pipeline:
        frames = collect(pipeline, 10)
    assert len(frames) == 3
    for frame, flipped in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame.image, flipped)


# --- one reset, one consumer --------------------------------------------------------------


def take(controls: Controls, start: threading.Barrier, taken: list[bool]) -> None:
    """Takes a reset, at once with the other racers."""
    start.wait()
    taken.append(controls.take_reset())


def test_a_reset_requested_from_another_thread_is_taken_exactly_once() -> None:
    controls = Controls(steps=1, step_size=0.01, flow=True, layers=CONFIG.layers)
    for _ in range(200):
        requester = threading.Thread(target=controls.request_reset)
        requester.start()
        requester.join()
        start = threading.Barrier(2)
        taken: list[bool] = []
        racers = [threading.Thread(target=take, args=(controls, start, taken)) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(taken) == [False, True]  # one of the two racers got it, never both
    assert controls.take_reset() is False  # nothing left over


def test_r_key_resets_the_dream_once_in_the_dream_thread(step: DreamStep) -> None:
    from livedream.preview import KeyHandler

    controls = Controls.from_dream(resolve_here(CONFIG))
    keys = KeyHandler(controls, [CONFIG.layers])
    presses = [threading.Thread(target=keys.handle, args=(ord("r"),)) for _ in range(3)]
    for press in presses:  # three presses before the first frame: one reset
        press.start()
    for press in presses:
        press.join()
    resets: list[str] = []

    def make_dreamer() -> Dreamer:
        dreamer = Dreamer(resolve_here(CONFIG), step=step)
        reset = dreamer.reset

        def counted() -> None:
            resets.append(threading.current_thread().name)
            reset()

        dreamer.reset = counted  # type: ignore[method-assign]
        return dreamer

    source = SyntheticSource(width=160, height=120, fps=30.0, frames=3, live=False)
    with RenderPipeline(source, make_dreamer, controls=controls) as pipeline:
        frames = collect(pipeline, 10)
    assert len(frames) == 3 and all(f.dreamed for f in frames)
    assert resets == [DREAM_THREAD]
    assert controls.take_reset() is False


# --- which thread composites ------------------------------------------------------------------


def record_composites(pipeline: Pipeline, threads: list[str]) -> None:
    """Makes ``pipeline``'s compositor note the name of each thread that runs it."""
    composite = pipeline.compositor.composite

    def recorded(*args: object, **kwargs: object) -> tuple[np.ndarray, bool]:
        threads.append(threading.current_thread().name)
        return composite(*args, **kwargs)  # type: ignore[arg-type]

    pipeline.compositor.composite = recorded  # type: ignore[method-assign]


class EarlyFrames(LivePipeline):
    """A live pipeline that notes the frames going out before the first keyframe."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.early: list[tuple[int, str]] = []

    def _before_first_keyframe(self, item: TimedFrame) -> None:
        self.early.append((item.index, threading.current_thread().name))


def test_live_pipeline_composites_in_the_thread_that_takes_the_frames(step: DreamStep) -> None:
    source = SyntheticSource(width=160, height=120, fps=100.0)
    pipeline = EarlyFrames(source, make_dreamer(step), pace_fps=100.0, wait_for_dream=False)
    threads: list[str] = []
    record_composites(pipeline, threads)
    frames: list[TimedFrame] = []

    def output() -> None:
        for frame in pipeline:
            frames.append(frame)
            if sum(f.dreamed for f in frames) >= 3 or len(frames) > 3000:
                return

    consumer = threading.Thread(target=output, name="livedream-output")
    with pipeline:
        consumer.start()
        consumer.join()
    assert sum(f.dreamed for f in frames) >= 3
    assert len(threads) == len(frames)  # every frame, composited as it went out
    assert set(threads) == {"livedream-output"}
    first = next(f.index for f in frames if f.dreamed)
    # Frames out before the first keyframe pass the early-frames hook, in the same thread.
    assert [index for index, _ in pipeline.early] == list(range(len(pipeline.early)))
    assert all(index < first for index, _ in pipeline.early)
    assert {name for _, name in pipeline.early} <= {"livedream-output"}


def test_render_pipeline_composites_in_the_dream_thread(
    step: DreamStep, tmp_path: Path, write_video: WriteVideo
) -> None:
    source = VideoFileSource(write_video(tmp_path / "clip.avi", frames=6, width=160, height=120))
    pipeline = RenderPipeline(source, make_dreamer(step), dream_every=3)
    threads: list[str] = []
    record_composites(pipeline, threads)
    with pipeline:
        frames = collect(pipeline, 10)
    assert len(frames) == 6 and all(f.dreamed for f in frames)
    assert len(threads) >= 6
    assert set(threads) == {DREAM_THREAD}
    assert pipeline.stats.dreamed < 6  # frames between keyframes were composited, not dreamed


# --- two pipelines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "kind", "other"),
    [(True, LivePipeline, RenderPipeline), (False, RenderPipeline, LivePipeline)],
)
def test_the_run_gets_a_live_or_a_render_pipeline_two_small_classes(
    live: bool, kind: type[Pipeline], other: type[Pipeline]
) -> None:
    source = SyntheticSource(width=160, height=120, frames=1, live=False)
    make: Callable[[], Dreamer] = lambda: Dreamer(resolve_here(CONFIG))  # noqa: E731 (never called)
    pipeline = make_pipeline(source, make, live=live, dream_every=2, pace_fps=25.0)
    assert type(pipeline) is kind
    assert not isinstance(pipeline, other)
    assert pipeline.pace_fps == 25.0
    assert getattr(pipeline, "dream_every", None) == (None if live else 2)  # a render's only
    lines, _ = inspect.getsourcelines(kind)
    assert len(lines) < 150
    pipeline.stop()  # never started: the source is closed all the same
    assert pipeline.alive_threads() == [] and source.closed
