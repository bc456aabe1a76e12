"""Reliability: bad input stopped at the door in one line, devices lost mid-run,
no display, memory limits and long runs (how each run ends for its files: test_endings.py).

Real parts throughout: the CLI's ``main()`` in this process where the behaviour needs no process
of its own, real ``livedream`` subprocesses where it does (signals, a forced exit, TensorFlow's
chatter on fd 2, a memory limit, another user), videos written with OpenCV, the bundled model
(vgg16_hed) at tiny dream sizes, the fake pyvirtualcam backend.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_DREAM
from helpers import (
    FAST,
    FakeCameraLog,
    WriteVideo,
    count_frames,
    hidden_files,
    one_line,
    run_livedream,
)

from livedream.cli import main
from livedream.dream import Dreamer, DreamStep
from livedream.errors import SourceLostError
from livedream.pipeline import LivePipeline, RenderPipeline
from livedream.resolve import resolve_here
from livedream.sinks import NullSink, VideoFileSink
from livedream.sources import SyntheticSource, VideoFileSource, WebcamSource

ROOT = Path(__file__).resolve().parents[1]
TINY = SHARED_DREAM  # the session's shared dream step at 64x48


@pytest.fixture
def tiny_dreamer(shared_step: DreamStep) -> Callable[[], Dreamer]:
    """Makes the pipeline's dreamer on the session's shared step (no model build per test)."""
    dream = resolve_here(TINY)  # here: the dream thread only builds the Dreamer
    return lambda: Dreamer(dream, step=shared_step)


# --- 1. bad input at the door ---------------------------------------------------------------


def _bad_inputs(tmp: Path, clip: Path) -> dict[str, tuple[list[str], list[str]]]:
    """case -> (arguments, what the one line must say)."""
    (tmp / "random.mp4").write_bytes(bytes(range(256)) * 40)
    (tmp / "notes.png").write_text("this is not a picture\n" * 14)
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "a_folder.mp4").mkdir()
    (tmp / "garbage.h5").write_bytes(b"not hdf5 at all" * 10)
    (tmp / "a_file").write_text("x")
    (tmp / "photo.png").write_bytes(cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))[1])
    out = str(tmp / "out.mp4")
    src = ["-i", str(clip)]
    return {
        "missing file": (["-i", str(tmp / "missing.mp4"), "-o", out], ["no such file"]),
        "random bytes": (["-i", str(tmp / "random.mp4"), "-o", out], ["not a video", "ffmpeg"]),
        "text as png": (["-i", str(tmp / "notes.png"), "-o", out], ["not an image", "text"]),
        "empty file": (["-i", str(tmp / "empty.mp4"), "-o", out], ["empty (0 bytes)"]),
        "directory": (["-i", str(tmp / "a_folder.mp4"), "-o", out], ["is a folder"]),
        "no such webcam": (["-i", "97", "-o", out], ["webcam 97", "--list-cameras"]),
        "steps negative": (
            [*src, "-o", out, "--steps", "-1"],
            ["--steps", "from 1 to 250, got -1"],
        ),
        "steps zero": ([*src, "-o", out, "--steps", "0"], ["--steps", "from 1 to 250, got 0"]),
        "fps zero": ([*src, "-o", out, "--fps", "0"], ["--fps", "from 1 to 240, got 0"]),
        "fps negative": ([*src, "-o", out, "--fps", "-5"], ["--fps", "from 1 to 240, got -5"]),
        "size 0x0": ([*src, "-o", out, "--dream-size", "0x0"], ["from 16x16", "got 0x0"]),
        "size text": ([*src, "-o", out, "--dream-size", "big"], ["WIDTHxHEIGHT", "'big'"]),
        "unknown model": ([*src, "-o", out, "--model", "alexnet"], ["'alexnet'", "vgg16_hed"]),
        "unknown layer": (
            [*src, "-o", out, "--layers", "block9_conv9"],
            ["no layer 'block9_conv9'", "block4_conv3", "--layers"],
        ),
        "weights not hdf5": (
            [*src, "-o", out, "--weights", str(tmp / "garbage.h5")],
            ["garbage.h5", "not a readable HDF5 file", ".weights.h5"],
        ),
        "weights missing": (
            [*src, "-o", out, "--weights", str(tmp / "nope.h5")],
            ["nope.h5 not found"],
        ),
        "weights folder": (
            [*src, "-o", out, "--weights", str(tmp / "a_folder.mp4")],
            ["is a folder"],
        ),
        "output folder missing": (
            [*src, "-o", str(tmp / "no" / "such" / "out.mp4")],
            ["does not exist", "create it first"],
        ),
        "output under a file": (
            [*src, "-o", str(tmp / "a_file" / "out.mp4")],
            ["a_file is a file, not a folder"],
        ),
        "output unknown format": (
            [*src, "-o", str(tmp / "out.txt")],
            ["unknown video format '.txt'", ".mp4"],
        ),
        "image output for a video": (
            [*src, "-o", str(tmp / "out.png")],
            ["is an image but the input is a video"],
        ),
        "video from a photo": (
            ["-i", str(tmp / "photo.png"), "-o", out],
            ["is a photo", "--max-frames"],
        ),
    }


BAD_INPUT_CASES = [
    "missing file",
    "random bytes",
    "text as png",
    "empty file",
    "directory",
    "no such webcam",
    "steps negative",
    "steps zero",
    "fps zero",
    "fps negative",
    "size 0x0",
    "size text",
    "unknown model",
    "unknown layer",
    "weights not hdf5",
    "weights missing",
    "weights folder",
    "output folder missing",
    "output under a file",
    "output unknown format",
    "image output for a video",
    "video from a photo",
]


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_is_stopped_at_the_door_in_one_line(
    case: str, tmp_path: Path, clip: Path, no_tensorflow: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expected = _bad_inputs(tmp_path, clip)[case]
    code = main([*args, "--no-preview"])
    line = one_line(capsys.readouterr().err)
    assert code == 2, line
    assert line.startswith("error: ")
    for text in expected:
        assert text in line
    # Stopped before TensorFlow (no_tensorflow) or a camera: nothing opened, nothing written.
    assert not (tmp_path / "out.mp4").exists()
    assert hidden_files(tmp_path) == []


@pytest.mark.parametrize("case", ["random bytes", "no such webcam"])
def test_native_libraries_stay_quiet_on_a_refused_input(
    case: str, tmp_path: Path, clip: Path
) -> None:
    # FFmpeg and the camera drivers write to file descriptor 2 themselves: only a process of
    # its own shows what reaches the terminal, and it is the one line.
    args, expected = _bad_inputs(tmp_path, clip)[case]
    result = run_livedream(*args, "--no-preview", timeout=60)
    line = one_line(result.stderr)
    assert result.returncode == 2, line
    for text in expected:
        assert text in line


# --- 2. lost devices mid-run --------------------------------------------------------------


def test_webcam_that_stops_delivering_is_reported_lost(clip: Path) -> None:
    # The real WebcamSource over a real OpenCV capture that runs dry: a camera unplugged.
    source = WebcamSource(str(clip), api=cv2.CAP_FFMPEG, lost_after=0.3)
    with source:
        frames = 0
        started = time.monotonic()
        with pytest.raises(SourceLostError) as info:
            while source.read() is not None:
                frames += 1
                started = time.monotonic()
        waited = time.monotonic() - started
    assert frames == 40
    assert 0.3 <= waited < 1.5
    message = str(info.value)
    assert message == (
        f"webcam {clip} stopped delivering frames (unplugged?) for 0.3 s; "
        "reconnect it and start again"
    )


def test_closing_a_webcam_does_not_wait_for_a_failing_read(clip: Path) -> None:
    source = WebcamSource(str(clip), api=cv2.CAP_FFMPEG, lost_after=20.0)
    for _ in range(40):
        assert source.read() is not None
    # The capture is dry now: a read polls for 20 s. Close from another thread meanwhile.
    reader_error: list[BaseException] = []
    results: list[Any] = []

    def read() -> None:
        try:
            results.append(source.read())
        except BaseException as exc:
            reader_error.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    source.close()
    closed_in = time.monotonic() - started
    thread.join(10.0)
    assert not thread.is_alive()
    assert closed_in < 5.0  # far below the read's 20 s: a bound, not a timing
    assert results == [None] and reader_error == []  # the end of the stream, not "lost"


def test_lost_source_still_delivers_every_frame_it_captured(
    tmp_path: Path, clip: Path, tiny_dreamer: Callable[[], Dreamer]
) -> None:
    source = WebcamSource(str(clip), api=cv2.CAP_FFMPEG, lost_after=0.3)
    out = tmp_path / "kept.avi"
    delivered = []
    with (
        VideoFileSink(out, width=160, height=120, fps=25.0) as sink,
        LivePipeline(source, tiny_dreamer, pace_fps=25.0) as pipeline,
    ):
        while not pipeline.ended:
            frame = pipeline.next_frame(0.05)
            if frame is not None:
                sink.write(frame.image)
                delivered.append(frame.index)
    assert isinstance(pipeline.error, SourceLostError)
    stats = pipeline.stats
    assert stats.captured == 40
    # The end of the stream never pushes out the last frame: the newest one always arrives.
    assert delivered[-1] == 39
    assert len(delivered) == stats.output == stats.captured - stats.dropped
    assert count_frames(out)[0] == len(delivered)


def test_virtual_camera_failing_mid_run_is_reported_and_the_recording_goes_on(
    tmp_path: Path,
    clip: Path,
    vcam_env: FakeCameraLog,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake_vcam = vcam_env
    fake_vcam.fail_after = 3
    out = tmp_path / "out.mp4"
    code = main(["-i", str(clip), "-o", str(out), "--virtual-cam", "--no-preview", *FAST])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: virtual camera /dev/video-fake stopped: fake device went away; "
        "the other outputs went on to the end"
    )
    assert len(fake_vcam.frames) == 3
    assert fake_vcam.closed == 1
    assert count_frames(out) == (40, 160, 120)  # the recording lost nothing


def test_virtual_camera_failing_with_nothing_else_to_show_ends_the_run(
    clip: Path,
    vcam_env: FakeCameraLog,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake_vcam = vcam_env
    fake_vcam.fail_after = 2
    code = main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: virtual camera /dev/video-fake stopped: fake device went away")
    assert "nothing else shows the dream" in last


# --- 4. no display -----------------------------------------------------------------------------


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_preview_without_a_display_points_to_the_other_outputs(
    clip: Path, no_display: None, no_tensorflow: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", str(clip), "--preview"])
    line = one_line(capsys.readouterr().err)
    assert code == 2
    assert "cannot open a preview window: no display (DISPLAY is not set)" in line
    for flag in ("--no-preview", "--output", "--virtual-cam"):
        assert flag in line


def test_nothing_to_show_the_dream_on_says_what_to_give(
    clip: Path, no_display: None, no_tensorflow: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", str(clip)])
    line = one_line(capsys.readouterr().err)
    assert code == 2
    assert "nothing to show the dream on" in line
    assert "--output FILE or --virtual-cam" in line


# --- 5. accelerator limits and TensorFlow's chatter ------------------------------------------


def _limit_address_space(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def test_out_of_memory_at_a_huge_dream_size_says_to_dream_smaller(
    tmp_path: Path, clip: Path
) -> None:
    # A real out-of-memory: the process gets a hard address-space limit that the model fits in
    # (it needs ~2.5 GiB) and a 4096x4096 dream (4 GiB for one activation) does not. oneDNN is
    # off because TensorFlow's oneDNN kernels crash on a failed allocation instead of raising;
    # TensorFlow's own kernels raise ResourceExhaustedError, as a GPU out of memory does.
    # The door's memory estimate (livedream.limits) would refuse this dream up front: the
    # command runs with a MemAvailable of 1 TB so that the run-time error is what is tested.
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    out = tmp_path / "out.mp4"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   1000000000 kB\n")
    command = (
        "import sys; from pathlib import Path; from livedream import limits; "
        f"limits.MEMINFO = Path({str(meminfo)!r}); from livedream.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    args = ["-i", str(clip), "-o", str(out), "--dream-size", "4096x4096"]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            command,
            *args,
            "--layers",
            "block1_conv2",
            "--precision",
            "float32",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limit_address_space(6 * 1024**3),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "error: out of memory dreaming at 4096x4096: "
        "try a smaller --dream-size (e.g. 320x240) or fewer --layers"
    )
    assert not out.exists()
    assert hidden_files(tmp_path) == []


CHATTER = re.compile(r"oneDNN|cuda|cuInit|^[IWEF]\d{4} |absl::|tensorflow/", re.MULTILINE)


def test_tensorflow_chatter_stays_out_of_the_terminal_unless_verbose(
    tmp_path: Path, clip: Path
) -> None:
    args = ["-i", str(clip), "--max-frames", "3", *FAST]
    quiet = run_livedream(*args, "-o", str(tmp_path / "a.mp4"))
    assert quiet.returncode == 0, quiet.stderr
    assert CHATTER.search(quiet.stderr) is None, quiet.stderr
    verbose = run_livedream(
        "-i", str(clip), "-o", str(tmp_path / "b.mp4"), "--max-frames", "3", "-v", *FAST
    )
    assert verbose.returncode == 0, verbose.stderr
    assert CHATTER.search(verbose.stderr) is not None  # it is there to hide


# --- 6. long runs ------------------------------------------------------------------------------


def _scenes_ts(path: Path, scenes: list[int]) -> Path:
    """A 1 s MPEG-TS clip at 25 fps: frame i shows still scene ``scenes[i // 5]`` (0 or 1)."""
    rng = np.random.default_rng(1)
    texture = cv2.resize(rng.integers(0, 60, (24, 32, 3), dtype=np.uint8), (160, 120))
    stills = [texture + 20, 255 - texture]  # a dark scene and a bright one
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(stills[scenes[i // 5]], format="bgr24")
            frame.pts = i
            out.mux(video.encode(frame.reformat(format="yuv420p")))
        out.mux(video.encode(None))
    return path


def test_a_clock_that_jumps_back_does_not_stale_the_dream(
    tmp_path: Path, tiny_dreamer: Callable[[], Dreamer]
) -> None:
    # Each part cuts to another scene and back (at 0.4 s and 0.8 s); the join does not cut.
    # After the clock starts over, each keyframe dreamed must still be the one shown.
    part = _scenes_ts(tmp_path / "part.ts", [0, 0, 1, 1, 0]).read_bytes()
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part + part)
    source = VideoFileSource(joined)
    with RenderPipeline(source, tiny_dreamer, dream_every=3) as pipeline:
        dreamed, shown = [], []
        publish = pipeline.compositor.publish

        def spy(keyframe: Any) -> None:
            publish(keyframe)
            dreamed.append(keyframe.index)
            current = pipeline.compositor.keyframe
            shown.append(current.index if current is not None else None)

        pipeline.compositor.publish = spy  # type: ignore[method-assign]
        while not pipeline.ended:
            pipeline.next_frame(0.05)
    assert pipeline.error is None
    assert pipeline.compositor.cuts >= 2  # the scene cuts were seen, and each reset the dream
    assert pipeline.stats.output == 50
    assert max(dreamed) >= 48
    assert shown == dreamed


def test_no_thread_outlives_a_stopped_pipeline(tiny_dreamer: Callable[[], Dreamer]) -> None:
    before = threading.active_count()
    source = SyntheticSource(width=160, height=120, fps=60.0, frames=None)
    sink = NullSink()
    pipeline = LivePipeline(source, tiny_dreamer, pace_fps=60.0)
    pipeline.start()
    try:
        deadline = time.monotonic() + 60
        while sink.frames_written < 20 and time.monotonic() < deadline:
            frame = pipeline.next_frame(0.05)
            if frame is not None:
                sink.write(frame.image)
        assert threading.active_count() == before + 2  # capture and dream
    finally:
        pipeline.stop()
    assert sink.frames_written >= 20
    assert pipeline.alive_threads() == []
    assert threading.active_count() == before
    assert source.closed


def test_pipeline_stop_while_a_file_render_is_in_flight_closes_everything(
    tmp_path: Path, write_video: WriteVideo, tiny_dreamer: Callable[[], Dreamer]
) -> None:
    before = threading.active_count()
    source = VideoFileSource(write_video(tmp_path / "clip.avi", frames=200))
    with RenderPipeline(source, tiny_dreamer) as pipeline:
        deadline = time.monotonic() + 60
        while pipeline.stats.output < 5 and time.monotonic() < deadline:
            pipeline.next_frame(0.05)
        assert not pipeline.ended  # stopped with frames still queued and in flight
    assert pipeline.stats.output >= 5
    assert pipeline.alive_threads() == []
    assert threading.active_count() == before
    assert source.closed


def test_soak_script_runs_a_short_soak(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "soak.py"),
            *("--frames", "60", "--fps", "30", "--dream-size", "64x48"),
            *("--layers", "block2_conv2", "--precision", "float32", "--json", str(report)),
            # Two seconds of TensorFlow still warming up its allocator say nothing of a leak
            # (+6% seen on a loaded host, old code and new): the 2% bound is make soak's, over
            # 10,000 frames. Here the script's mechanics are checked, and a runaway growth.
            *("--max-growth", "20"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    import json

    figures = json.loads(report.read_text())
    assert figures["captured"] == 60
    assert figures["threads_after"] == figures["threads_before"]
    assert figures["output"] == figures["captured"]  # every camera frame went out
    assert 0 < figures["dreamed"] <= figures["output"]
    assert figures["rss_warm"] > 0 and figures["rss_end"] > 0
