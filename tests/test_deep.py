"""Deep renders without Ray: octaves on video frames, steps in short compiled calls, chunks
with a warm-up, the locked chunk folder, resuming after SIGKILL, and the one-line refusals."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from avclips import make_clip, probe, two_shots
from conftest import SHARED_DREAM
from helpers import LivedreamProcess, one_line, read_video, run_livedream, wait_for

from livedream.config import DeepConfig, DreamConfig
from livedream.deep.assemble import assemble, cross_fade
from livedream.deep.chunks import Chunk, CutFinder, chunk_frames, encode_segment, plan_chunks
from livedream.deep.store import ChunkFolderError, ChunkStore, chunk_folder

if TYPE_CHECKING:
    from livedream.step import DreamStep

# The tiny render every CLI test here shares: 30 frames of 64x48 with a cut at frame 14.
FRAMES, CUT = 30, 14
DREAM_FLAGS = ["--layers", "block3_conv3", "--precision", "float32", "--steps", "2"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 64x48 clip with sound and a scene cut at frame 14."""
    path = tmp_path_factory.mktemp("deep") / "cut.mp4"
    return make_clip(path, frames=FRAMES, size=(64, 48), pictures=two_shots(CUT))


def counts(stderr: str) -> tuple[int, int]:
    """(frames dreamed, frames reused) from a deep render's last log line."""
    match = re.search(r"dreamed (\d+) frames, reused (\d+)", stderr)
    assert match is not None, stderr
    return int(match[1]), int(match[2])


@pytest.mark.parametrize(
    ("total", "cuts", "size", "warmup", "expected"),
    [
        # (start, end, warm_start, fade_start)
        # one shot: chunks of 8, each after the first dreams up to 3 frames before its own and
        # cross-fades over them from the chunk before
        (20, [], 8, 3, [(0, 8, 0, 0), (8, 16, 5, 5), (16, 20, 13, 13)]),
        # a cut at 10: the second shot starts afresh, no warm-up or fade across the cut
        (20, [10], 8, 3, [(0, 8, 0, 0), (8, 10, 5, 5), (10, 18, 10, 10), (18, 20, 15, 15)]),
        # a warm-up longer than a chunk: the cross-fade stays within the chunk before
        (12, [], 4, 6, [(0, 4, 0, 0), (4, 8, 0, 0), (8, 12, 2, 4)]),
    ],
)
def test_chunks_follow_the_shots_with_a_warm_up(
    total: int,
    cuts: list[int],
    size: int,
    warmup: int,
    expected: list[tuple[int, int, int, int]],
) -> None:
    chunks = plan_chunks(total, cuts, chunk_frames=size, warmup=warmup)
    assert [(c.start, c.end, c.warm_start, c.fade_start) for c in chunks] == expected
    assert [c.number for c in chunks] == list(range(len(expected)))


def test_chunk_frames_hands_each_chunk_its_warm_up_and_skips_finished_ones() -> None:
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(20)]
    chunks = plan_chunks(20, [10], chunk_frames=4, warmup=2)
    wanted = {1, 2, 4}  # 0 and 3 finished already
    got = {
        chunk.number: [int(f[0, 0, 0]) for f in held]
        for chunk, held in chunk_frames(iter(frames), chunks, lambda c: c.number in wanted)
    }
    assert got == {1: [2, 3, 4, 5, 6, 7], 2: [6, 7, 8, 9], 4: [12, 13, 14, 15, 16, 17]}


def assemble_tiny(store: ChunkStore, chunks: list[Chunk], out: Path, frame_in: np.ndarray) -> int:
    """``assemble`` of 12 frames of 16x16 at 10 fps, lossless, every input frame ``frame_in``."""
    times = [i / 10 for i in range(12)]
    inputs = iter([frame_in] * 12)
    return assemble(
        store,
        chunks,
        times,
        out,
        inputs,
        width=16,
        height=16,
        fps=10.0,
        quality=0,
        overwrite=False,
        audio_from=None,
    )


def test_the_output_cross_fades_from_one_chunk_to_the_next_over_the_warm_up(
    tmp_path: Path,
) -> None:
    """Two chunks of one shot dreamed differently (grey 40, then grey 200): the frames the
    second one warmed up on go out as a ramp from the first to the second, no jump."""
    chunks = plan_chunks(12, [], chunk_frames=6, warmup=3)  # the second fades over 3..5
    out = tmp_path / "out.mkv"
    with ChunkStore(out, {"test": 1}) as store:
        for chunk, grey in zip(chunks, (40, 200), strict=True):
            frames = [np.full((16, 16, 3), grey, np.uint8)] * (chunk.fade + chunk.frames)
            store.save(chunk.number, encode_segment(frames, 10.0))
        written = assemble_tiny(store, chunks, out, np.zeros((16, 16, 3), np.uint8))  # black in
    assert written == 12
    greys = [float(f.mean()) for f in read_video(out)[0]]  # through YUV: a level or two off
    assert greys == pytest.approx([40, 40, 40, 80, 120, 160, 200, 200, 200, 200, 200, 200], abs=3)


def test_a_damaged_chunk_leaves_no_output_and_keeps_the_chunks(tmp_path: Path) -> None:
    chunks = plan_chunks(12, [], chunk_frames=6, warmup=3)
    out = tmp_path / "out.mkv"
    frames = [np.full((16, 16, 3), 90, np.uint8)] * 9
    with ChunkStore(out, {"test": 1}) as store:
        store.save(0, encode_segment(frames[:6], 10.0))
        store.save(1, encode_segment(frames[:8], 10.0))  # 3 to fade + 6 kept = 9 expected
        with pytest.raises(ChunkFolderError, match=r"chunk-00001\.mkv holds 8 frames, expected 9"):
            assemble_tiny(store, chunks, out, frames[0])
    assert not out.exists()  # no cut-short file under the name asked for...
    assert [p.name for p in tmp_path.iterdir()] == [chunk_folder(out).name]  # ...nor hidden
    assert len(list(chunk_folder(out).glob("chunk-*.mkv"))) == 2


def test_a_chunk_folder_of_another_livedream_version_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.mp4"
    chunk_folder(out).mkdir()
    (chunk_folder(out) / "manifest.json").write_text('{"version": 1, "test": 1}')
    with pytest.raises(ChunkFolderError) as refused:
        ChunkStore(out, {"test": 1})
    assert str(refused.value).endswith(
        "was made by another version of livedream (folder version 1, this one 2); delete that "
        "folder to start over"
    )


def test_a_cross_faded_frame_keeps_the_strength_of_the_two_dreams() -> None:
    """Two unrelated dream patterns mixed half and half would cancel to ~0.7 of their
    strength; the cross-fade keeps it, and the frame is still made of both."""
    rng = np.random.default_rng(0)
    frame_in = np.full((64, 64, 3), 128, np.uint8)
    first, second = (rng.normal(0, 20, (64, 64, 3)) for _ in range(2))
    before = np.clip(128 + first, 0, 255).astype(np.uint8)
    after = np.clip(128 + second, 0, 255).astype(np.uint8)
    mixed = cross_fade(before, after, frame_in, 0.5).astype(np.float32) - 128
    assert np.abs(mixed).mean() == pytest.approx(np.abs(first).mean(), rel=0.05)
    for dream in (first, second):
        assert np.corrcoef(mixed.ravel(), dream.ravel())[0, 1] > 0.6


def test_cut_finder_finds_the_clips_cut(clip: Path) -> None:
    from livedream.sources import VideoFileSource

    finder = CutFinder((64, 48))
    with VideoFileSource(clip) as source:
        cuts = [i for i in range(FRAMES) if finder.is_cut(source.read(), i)]  # type: ignore[arg-type]
    assert cuts == [CUT]


def test_steps_sliced_into_short_calls_dream_the_same(
    build_shared_step: Callable[[DreamConfig], DreamStep],
) -> None:
    from livedream.step import run_steps_in_slices

    step = build_shared_step(SHARED_DREAM)
    image = two_shots(99)(0, 64, 48).astype(np.float32)
    whole, _ = step(image, steps=6, step_size=3.0, seed=(0, 5))
    # A budget far below one step's cost: every call takes one step.
    sliced, _ = run_steps_in_slices(step, image, 6, step_size=3.0, seed=(0, 5), max_call_s=1e-9)
    np.testing.assert_allclose(sliced, whole, atol=1e-3)
    stopped, _ = run_steps_in_slices(
        step, image, 6, step_size=3.0, seed=(0, 5), max_call_s=1e-9, should_stop=lambda: True
    )
    np.testing.assert_array_equal(stopped, image)  # a stop before the first call: nothing done


def coarseness(frames: list[np.ndarray], outs: list[np.ndarray]) -> float:
    """The share of the dream's (out - in) that survives a blur of 3 px: larger patterns
    keep more of it."""
    import cv2

    shares = []
    for frame, out in zip(frames, outs, strict=True):
        residual = out.astype(np.float32) - frame
        blurred = cv2.GaussianBlur(residual, (0, 0), 3)
        shares.append(float(np.abs(blurred).mean() / np.abs(residual).mean()))
    return float(np.mean(shares))


def test_octaves_on_a_video_dream_larger_patterns_and_carry_them_steadily(
    build_shared_step: Callable[[DreamConfig], DreamStep],
) -> None:
    """3 octaves of 2 steps against 1 scale of 6: the same steps a frame, larger patterns, and
    the carried dream flickers well under frames dreamed afresh (<= 0.6 of their flicker)."""
    from livedream.deep.octaves import FrameDreamer
    from livedream.resolve import resolve_here
    from livedream.temporal import flicker

    step = build_shared_step(SHARED_DREAM)
    dream = resolve_here(replace(SHARED_DREAM, steps=6))
    frames = [two_shots(99)(i, 64, 48) for i in range(6)]

    def render(octaves: int, *, fresh: bool = False) -> list[np.ndarray]:
        dreamer = FrameDreamer(dream, DeepConfig(octaves=octaves), step=step)
        assert dreamer.plan.total_steps == 6
        outs = []
        for i, frame in enumerate(frames):
            if fresh:
                dreamer.reset()
            outs.append(dreamer(frame, i))
        return outs

    one, three = render(1), render(3)
    assert coarseness(frames, three) > coarseness(frames, one) + 0.05
    carried = flicker(frames, three, width=64)["flicker"]
    assert carried <= 0.6 * flicker(frames, render(3, fresh=True), width=64)["flicker"]


def test_a_render_killed_midway_resumes_without_redoing_finished_chunks(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deep.mp4"
    args = ["-i", str(clip), "-o", str(out), "--chunk-frames", "6", *DREAM_FLAGS]
    folder = chunk_folder(out)
    first = LivedreamProcess(args)
    try:
        wait_for(lambda: next(folder.glob("chunk-*.mkv"), None), 300, "a finished chunk")
        first.proc.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.close()
    kept = {p.name for p in folder.glob("chunk-*.mkv")}
    assert kept and not out.exists()
    plan = plan_chunks(FRAMES, [CUT], chunk_frames=6, warmup=DeepConfig.warmup)
    reused = sum(c.frames for c in plan if f"chunk-{c.number:05d}.mkv" in kept)

    second = run_livedream(*args, timeout=300)
    assert second.returncode == 0, second.stderr
    assert counts(second.stderr) == (FRAMES - reused, reused)
    assert not folder.exists()  # removed once the output is assembled
    got, want = probe(out), probe(clip)
    assert len(got.frame_times) == FRAMES
    assert got.frame_times == pytest.approx(want.frame_times, abs=1e-3)
    assert got.audio_codecs == ["aac"]


def test_a_changed_input_or_flag_is_refused_in_one_line(clip: Path, tmp_path: Path) -> None:
    from livedream.args import parse_args
    from livedream.deep.render import manifest
    from livedream.deep.store import ChunkStore
    from livedream.resolve import check_look
    from livedream.sources import VideoFileSource

    source_clip = tmp_path / "in.mp4"
    source_clip.write_bytes(clip.read_bytes())
    out = tmp_path / "deep.mp4"
    args = ["-i", str(source_clip), "-o", str(out), "--chunk-frames", "6", *DREAM_FLAGS]
    config, _ = parse_args(args)
    assert config.deep is not None
    settings = check_look(config.dream).settings  # --model auto decided, as the run does
    with VideoFileSource(source_clip) as source:
        ChunkStore(out, manifest(config, settings, source, config.deep)).close()  # an earlier run's

    changed = run_livedream(*args[:-1], "3", timeout=60)  # --steps 3
    assert changed.returncode == 1
    line = one_line(changed.stderr)
    assert "--steps was 2, now 3" in line and "delete that folder" in line

    os.utime(source_clip, ns=(0, 0))  # the input changed (its modification time)
    touched = run_livedream(*args, timeout=60)
    assert touched.returncode == 1
    assert "input modified" in one_line(touched.stderr)

    with open(chunk_folder(out) / "lock", "w") as lock:  # another run holds the folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = run_livedream(*args, "--octaves", "2", timeout=60)
    assert held.returncode == 1
    assert "another livedream run is rendering" in one_line(held.stderr)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--realtime"], "render to a file only: drop --realtime"),
        (["--mirror"], "got --mirror: drop it"),
        (["--dream-every", "2", "--dream-size", "auto"], "got --dream-every, --dream-size auto"),
    ],
)
def test_what_a_deep_render_does_not_take_is_refused_before_tensorflow(
    clip: Path,
    tmp_path: Path,
    extra: list[str],
    expected: str,
    no_tensorflow: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from livedream.cli import main

    out = tmp_path / "deep.mp4"
    assert main(["-i", str(clip), "-o", str(out), "--chunk-frames", "6", *extra]) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not chunk_folder(out).exists() and not out.exists()


def test_an_unreachable_cluster_is_one_line(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "deep.mp4"
    result = run_livedream(
        "-i", str(clip), "-o", str(out), "--cluster", f"127.0.0.1:{port}", timeout=60
    )
    assert result.returncode == 1
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in one_line(result.stderr)
    assert not chunk_folder(out).exists() and not out.exists()
