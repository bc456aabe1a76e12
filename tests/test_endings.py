"""Endings: what the name asked for and the hidden file hold after each way a run can end
(finished, Ctrl-C, SIGTERM, lost or damaged input, a dream failure, a full disk, SIGKILL), and
outputs refused before any work starts.

Real parts throughout: the CLI's ``main()`` in this process where the behaviour needs no process
of its own, real ``livedream`` subprocesses where it does (signals, a forced exit, another user),
videos written with OpenCV and PyAV, the bundled model (vgg16_hed) at tiny dream sizes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from avclips import playable_frame_times
from helpers import (
    FAST,
    LivedreamProcess,
    WriteVideo,
    count_frames,
    hidden_files,
    one_line,
    stream_run,
    wait_for,
)
from rich.console import Console

import livedream.cli
import livedream.dream
from livedream.args import parse_args
from livedream.cli import main
from livedream.errors import SourceLostError
from livedream.sources import WebcamSource

RENDER_ARGS = FAST  # 64x48 on block2_conv2: frames go out fast, the file grows soon
# Seconds from Ctrl-C or SIGTERM to the exit: a bound on a hang, several times the 2 s
# promise (the dream thread is waited on for 1 s, then the file is finalized) so that a loaded
# machine cannot fail it.
EXIT_WITHIN = 10.0


# --- outputs refused at the door --------------------------------------------------------------


def test_output_folder_that_cannot_be_written_is_refused(tmp_path: Path, clip: Path) -> None:
    # Root may write anywhere, so as root the command runs as user nobody (via setpriv).
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no folder is unwritable")
        as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    folder = Path(tempfile.mkdtemp(prefix="livedream-ro-"))  # outside tmp_path: nobody sees it
    try:
        folder.chmod(0o555)
        target = folder / "out.mp4"
        result = subprocess.run(
            [*as_user, sys.executable, "-m", "livedream", "-i", str(clip), "-o", str(target)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        line = one_line(result.stderr)
        assert result.returncode == 2
        assert (
            line == f"error: cannot write {target}: folder {folder} is not writable; choose another"
        )
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_existing_output_is_not_touched_without_overwrite(
    tmp_path: Path, clip: Path, no_tensorflow: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"my precious video")
    code = main(["-i", str(clip), "-o", str(out), *FAST])
    line = one_line(capsys.readouterr().err)
    assert code == 2
    assert "already exists; pass --overwrite to replace it" in line
    assert out.read_bytes() == b"my precious video"
    assert hidden_files(tmp_path) == []


# --- lost and damaged input ------------------------------------------------------------------


def test_lost_webcam_ends_the_run_with_the_recording_finalized(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "call.mp4"
    config, _ = parse_args(["-i", "0", "-o", str(out), "--no-preview", *FAST])
    source = WebcamSource(str(clip), api=cv2.CAP_FFMPEG, lost_after=0.3)
    run = stream_run(config, source, Console(stderr=True, force_terminal=False))
    with pytest.raises(SourceLostError, match="stopped delivering frames"):
        run.run()
    assert run.stats.output > 0
    frames, width, height = count_frames(out)
    assert (width, height) == (160, 120)
    assert frames == run.outputs.sinks[0].frames_written > 0  # type: ignore[attr-defined]
    # Every frame that went out is in the recording, each at its own time (real time: a frame
    # shows until the next one's).
    assert frames == run.stats.output
    assert hidden_files(tmp_path) == []
    # No thread is left behind (one inside a TensorFlow call ends when the call returns).
    wait_for(lambda: run.pipeline.alive_threads() == [], 120, "the pipeline's threads to end")


def test_video_damaged_half_way_keeps_every_decoded_frame(
    tmp_path: Path, write_video: WriteVideo, capfd: pytest.CaptureFixture[str]
) -> None:
    whole = write_video(tmp_path / "whole.avi", frames=60)
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    decodable = count_frames(cut)[0]
    assert 0 < decodable < 58
    out = tmp_path / "out.mp4"
    code = main(["-i", str(cut), "-o", str(out), *FAST])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"error: {cut}: decoding stopped at frame {decodable} of 60 (file damaged?); "
        f"the {decodable} frames before it were kept"
    )
    assert count_frames(out) == (decodable, 160, 120)
    assert hidden_files(tmp_path) == []


# --- interrupted and killed renders ------------------------------------------------------------


class Render(LivedreamProcess):
    """A real ``livedream -i clip -o out`` process, watched through its stderr and its hidden
    temporary file."""

    def __init__(self, clip: Path, out: Path, args: list[str] = RENDER_ARGS) -> None:
        self.out = out
        self.pattern = f".{out.name}.*.partial{out.suffix}"  # the run's own hidden file
        super().__init__(["-i", str(clip), "-o", str(out), *args])

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"livedream ended early:\n{self.err}"
            assert time.monotonic() < deadline, f"timed out:\n{self.err}"
            time.sleep(0.01)

    @property
    def temp(self) -> Path | None:
        found = sorted(self.out.parent.glob(self.pattern))
        assert len(found) <= 1, found
        return found[0] if found else None

    def temp_size(self) -> int:
        try:
            return self.temp.stat().st_size if self.temp is not None else -1
        except FileNotFoundError:
            return -1

    def signal(self, signum: int) -> float:
        """Sends ``signum``; returns the seconds until the process ended."""
        sent = time.monotonic()
        self.proc.send_signal(signum)
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        took = time.monotonic() - sent
        self._reader.join(5)
        return took


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 frames of fresh noise each: the render takes far longer than any test lets it run,
    and H.264 cannot predict one frame from the last, so the temporary file grows by every
    frame written (the moments below watch its size)."""
    path = tmp_path_factory.mktemp("long") / "long.avi"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (320, 240))
    assert writer.isOpened()
    for _ in range(300):
        writer.write(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def render(long_clip: Path, tmp_path: Path) -> Iterator[Render]:
    run = Render(long_clip, tmp_path / "out.mp4")
    try:
        yield run
    finally:
        run.close()


MOMENTS: dict[str, Callable[[Render], bool]] = {
    # Importing TensorFlow: the input is open, nothing written yet.
    "start": lambda r: "starting TensorFlow" in r.err,
    # The output is open (its temporary file exists, empty) and the model loads and compiles.
    "model load": lambda r: 0 <= r.temp_size() < 1000,
    # The encoder flushed its first block of frames to the temporary file.
    "first frames": lambda r: r.temp_size() > 1000,
    # Several blocks of frames are out.
    "mid-stream": lambda r: r.temp_size() > 700_000,
}


@pytest.mark.parametrize(
    ("signum", "moment"),
    [
        (signal.SIGINT, "start"),
        (signal.SIGINT, "model load"),
        (signal.SIGINT, "first frames"),
        (signal.SIGINT, "mid-stream"),
        (signal.SIGTERM, "start"),
        (signal.SIGTERM, "model load"),
        (signal.SIGTERM, "mid-stream"),
    ],
)
def test_interrupted_render_exits_130_fast_and_keeps_every_dreamed_frame(
    render: Render, signum: int, moment: str
) -> None:
    render.wait_for(lambda: MOMENTS[moment](render))
    took = render.signal(signum)
    err = render.err
    assert render.proc.returncode == 130, err
    assert took < EXIT_WITHIN, f"exit took {took:.2f} s"
    assert "Traceback" not in err
    folder = render.out.parent
    assert hidden_files(folder) == []  # no temporary file is left behind
    if moment in ("start", "model load"):
        # Nothing was dreamed yet: no file at all, rather than an empty one.
        assert not render.out.exists()
        return
    # Every frame dreamed before the signal is in a playable file under the requested name.
    written = re.search(r"wrote \S+: (\d+) frames", err)
    assert written is not None, err
    frames, width, height = count_frames(render.out)
    assert frames == int(written.group(1)) > 0
    assert (width, height) == (320, 240)
    assert f"{frames} frames out" in err
    if moment == "mid-stream":
        assert frames > 10


def test_second_ctrl_c_forces_the_exit(long_clip: Path, tmp_path: Path) -> None:
    # A big dream: each TensorFlow call takes seconds, so the clean stop after the first Ctrl-C
    # waits its full second for the dream thread, and the second Ctrl-C comes in meanwhile.
    big = ["--dream-size", "1600x1200", "--layers", "block3_conv3", "--precision", "float32"]
    render = Render(long_clip, tmp_path / "out.mp4", [*big, "--verbose"])
    try:
        # The dream thread is inside its first big call (tens of seconds here): the clean stop
        # then waits its full second for it.
        render.wait_for(lambda: "dreaming at 1600x1200: the first call" in render.err, 120.0)
        render.proc.send_signal(signal.SIGINT)
        # The first press is taken (a second one sent before would be the same press to
        # Python): the run says so, and how to quit at once, as a person then does.
        render.wait_for(lambda: "Ctrl-C again quits at once" in render.err)
        took = render.signal(signal.SIGINT)
    finally:
        render.close()
    assert render.proc.returncode == 130, render.err
    assert took < EXIT_WITHIN  # a bound on a hang: the dream call it cut short takes far longer
    assert "forced exit: outputs of this run may be incomplete" in render.err
    assert not render.out.exists()  # at most the hidden temporary file is left


def test_crash_mid_render_leaves_nothing_under_the_requested_name(render: Render) -> None:
    render.wait_for(lambda: MOMENTS["mid-stream"](render))
    render.signal(signal.SIGKILL)
    assert render.proc.returncode == -signal.SIGKILL
    assert not render.out.exists()
    # What was written is only in the hidden file, which no one takes for the video, and it
    # plays: every frame but at most the last second's.
    temp = render.temp
    assert temp is not None and hidden_files(render.out.parent) == [temp.name]
    times = playable_frame_times(temp)
    assert len(times) > 10
    assert times[:10] == pytest.approx([i / 25 for i in range(10)], abs=1e-3)
    assert times == sorted(set(times))


def test_demo_replaces_its_own_output_but_not_a_named_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dream.mp4").write_bytes(b"an earlier demo")
    assert main(["--demo", "--max-frames", "2", *FAST]) == 0
    assert count_frames(tmp_path / "dream.mp4")[0] == 2
    (tmp_path / "mine.mp4").write_bytes(b"keep me")
    capfd.readouterr()
    assert main(["--demo", "-o", "mine.mp4", "--max-frames", "2", *FAST]) == 2
    assert "already exists" in one_line(capfd.readouterr().err)
    assert (tmp_path / "mine.mp4").read_bytes() == b"keep me"


def test_a_dream_failure_mid_render_publishes_the_frames_so_far(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The dream runs out of memory at the 6th keyframe (as a GPU might at frame 500 of 1,000).
    real = livedream.dream.Dreamer.keyframe
    calls = 0

    def failing(self: livedream.dream.Dreamer, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise MemoryError
        return real(self, *args, **kwargs)

    monkeypatch.setattr(livedream.dream.Dreamer, "keyframe", failing)
    out = tmp_path / "out.mp4"
    code = main(["-i", str(clip), "-o", str(out), *FAST])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: out of memory dreaming at")
    assert count_frames(out)[0] == 5  # every frame dreamed before the failure, published
    assert hidden_files(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 400 kB tmpfs of its own: a disk that fills up a few frames in."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_keeps_the_old_file_and_the_frames_so_far(
    small_disk: Path, long_clip: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = small_disk / "out.mp4"
    out.write_bytes(b"an earlier render")
    code = main(["-i", str(long_clip), "-o", str(out), "--overwrite", *FAST])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    [hidden] = hidden_files(small_disk)
    last = err.strip().splitlines()[-1]
    assert last == (
        f"error: cannot write {small_disk / hidden}: No space left on device; "
        "the file is incomplete"
    )
    assert out.read_bytes() == b"an earlier render"
    assert len(playable_frame_times(small_disk / hidden)) > 0  # the frames so far play
