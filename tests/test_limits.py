"""Door checks for every flag's real range (``livedream.limits``): one line and exit code 2
before TensorFlow starts, for values and sizes the run could not take, and runs that work at
both ends of every range."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import FAST, count_frames, photo, read_video, write_video

from livedream import limits
from livedream.cli import main
from livedream.config import DreamConfig
from livedream.device import Device
from livedream.dream import dream_image
from livedream.resolve import check_look, resolve_dream


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error:`` line on stderr; fails on a traceback or a TensorFlow start."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and "starting TensorFlow" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fps", "0.0001"], "--fps: expected a number from 1 to 240, got 0.0001"),
        (["--fps", "1e308"], "--fps: expected a number from 1 to 240, got 1e308"),
        (["--fps", "nan"], "--fps: expected a number from 1 to 240, got nan"),
        (["--steps", "251"], "--steps: expected a whole number from 1 to 250, got 251"),
        (["--step-size", "0"], "--step-size: expected a number above 0 up to 1, got 0"),
        (["--step-size", "5"], "--step-size: expected a number above 0 up to 1, got 5"),
        (["--octaves", "3000"], "--octaves: expected a whole number from 1 to 16, got 3000"),
        (["--octave-steps", "0"], "--octave-steps: expected a whole number from 1 to 1000, got 0"),
        (["--max-frames", "0"], "--max-frames: expected a whole number from 1 to 1000000000"),
        (["--dream-every", "0"], "--dream-every: expected a whole number from 1 to 10000, got 0"),
        (["--width", "8"], "--width: expected a whole number from 16 to 8192, got 8"),
        (["--height", "99999"], "--height: expected a whole number from 16 to 8192, got 99999"),
        (["--seed", str(2**31)], "--seed: expected a whole number from -2147483648 to"),
        (["--quality", "52"], "--quality: expected a whole number from 0 to 51, got 52"),
        (["--face-strength", "-0.1"], "--face-strength: expected a number from 0 to 1"),
        (["--dream-size", "8x8"], "--dream-size: expected a size from 16x16 to 8192x8192"),
    ],
)
def test_a_flag_out_of_its_range_is_one_line_exit_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-i", "clip.mp4", "-o", "out.mp4", *args]) == 2
    assert error_of(capsys).startswith(f"error: argument {says}")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    cv2.imwrite(str(tmp_path / "tiny.png"), photo(width=10, height=10))
    write_video(tmp_path / "banner.avi", frames=3, width=1920, height=40)
    photo(tmp_path / "photo.png")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # A 10x10 photo played live: DIS optical flow raises below 8-12 px a side.
        (
            ["-i", "tiny.png", "--max-frames", "2"],
            "the input's 10x10 frames give a dream of 10x10, below the 16 px a side the optical "
            "flow needs; give --dream-size 16x16 or larger",
        ),
        # A banner video: its flow check, 320 px wide, would be 7 px high.
        (
            ["-i", "banner.avi"],
            "the input's 1920x40 frames give a dream of 1920x40, 48 times as wide as it is "
            "high; the optical flow takes at most 20 times: give --dream-size 800x40",
        ),
        (
            ["-i", "photo.png", "--max-frames", "2", "--dream-size", "1000x16"],
            "--dream-size 1000x16 is 62 times as wide as it is high; the optical flow takes at "
            "most 20 times: give --dream-size 320x16",
        ),
        # InceptionV3's mixed3-mixed7 have no output below 43 px (checked before downloading).
        (
            ["-i", "photo.png", "--max-frames", "2", "--model", "inception_v3"],
            "--dream-size 40x30 is too small for --model inception_v3: its layers up to mixed7",
        ),
    ],
)
def test_a_dream_size_the_flow_or_model_cannot_take_is_refused_before_tensorflow(
    args: list[str],
    says: str,
    inputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(inputs)
    if "inception_v3" in args:
        args = [*args, "--dream-size", "40x30"]
    assert main([*args, "-o", "out.mp4"]) == 2
    assert error_of(capsys).startswith(f"error: {says}")
    assert not (inputs / "out.mp4").exists()


def test_the_dream_size_a_refusal_suggests_works(
    inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(inputs)
    args = ["-i", "tiny.png", "-o", "out.mp4", "--max-frames", "2", "--layers", "block2_conv2"]
    assert main(args) == 2
    suggested = re.search(r"--dream-size (\d+x\d+)", error_of(capsys))
    assert suggested is not None
    assert main([*args, "--dream-size", suggested.group(1), "--precision", "float32"]) == 0
    assert count_frames(inputs / "out.mp4") == (2, 10, 10)


def fake_meminfo(path: Path, available_kb: int) -> Path:
    path.write_text(f"MemTotal:       {2 * available_kb} kB\nMemAvailable:   {available_kb} kB\n")
    return path


def test_a_run_past_three_quarters_of_the_free_memory_is_refused(
    inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(inputs)
    # 1.5 GB free, of which 1.15 GB may be used: a 512x512 dream needs 1 GiB, TensorFlow another.
    monkeypatch.setattr(limits, "MEMINFO", fake_meminfo(inputs / "meminfo", 1_500_000))
    args = ["-i", "photo.png", "-o", "o.mp4", "--max-frames", "2", "--dream-size", "512x512"]
    assert main(args) == 2
    assert error_of(capsys) == (
        "error: a dream of 512x512 needs about 2.2 GB of memory, more than 75% of the 1.5 GB "
        "available; dream smaller (--dream-size), give a smaller input (ffmpeg -i IN -vf "
        "scale=1920:-2 OUT) or free some memory"
    )


def test_the_memory_estimate_counts_queued_frames_and_full_size_floats() -> None:
    # An 8000x8000 frame is 192 MB; a live run queues 16 of them and composites through three
    # 768 MB float32 copies; its default 240x240 dream adds 236 MB; TensorFlow 1 GiB.
    need = limits.peak_memory(8000, 8000, (240, 240), still=False)
    assert need == 16 * 192_000_000 + 3 * 768_000_000 + 240 * 240 * 4096 + 2**30
    assert limits.available_memory(Path("/no/such/meminfo")) is None


def test_octaves_never_go_below_the_model_minimum() -> None:
    """A small photo dreamed with InceptionV3: its smallest octave would be 32 px, which mixed3
    cannot take; the octaves start at 43 px instead."""

    class Model:
        layers = ("mixed3", "mixed5")

    class RecordingStep:
        model = Model()

        def __init__(self) -> None:
            self.sizes: list[tuple[int, ...]] = []
            self.seconds_per_step: dict[tuple[int, int], float] = {}  # as a DreamStep measures

        def __call__(
            self, image: np.ndarray, *, steps: int, **kw: object
        ) -> tuple[np.ndarray, float]:
            self.sizes.extend([image.shape[:2]] * steps)  # each step's size
            return image, 0.0

    step = RecordingStep()
    dream = resolve_dream(
        check_look(DreamConfig(model="inception_v3", octaves=4)), Device("cpu", "any", 2, False)
    )
    out = dream_image(photo(width=64, height=48), dream, step=step)  # type: ignore[arg-type]
    assert out.shape == (48, 64, 3)
    assert len(step.sizes) == 4 * 10  # 4 octaves of 10 steps
    assert min(min(s) for s in step.sizes) == 43


@pytest.mark.parametrize(
    "args",
    [
        # The ZeroDivisionError and OverflowError: a photo to an .avi at either end.
        ["--fps", "1", "--steps", "1", "--quality", "0", "--seed", str(-(2**31)), "--blend", "0"],
        [
            *("--fps", "240", "--steps", "100", "--quality", "51", "--seed", str(2**31 - 1)),
            *("--step-size", "1", "--blend", "1", "--dream-every", "10000", "--face-strength", "0"),
        ],
    ],
)
def test_a_run_at_either_end_of_every_range_works(
    args: list[str], inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(inputs)
    assert main(["-i", "photo.png", "-o", "out.avi", "--max-frames", "2", *FAST, *args]) == 0
    frames, fps = read_video(inputs / "out.avi")
    assert len(frames) == 2 and fps == pytest.approx(float(args[1]))


def test_a_photo_too_big_for_the_memory_is_dreamed_smaller_or_refused(
    inputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 4.1 GB free, 3.1 GB usable: a 2000x1500 photo's usual 1280x960 octave needs ~6.2 GB
    # (4 kB a dream pixel); 655 px on the long side fits, and the user is told.
    monkeypatch.setattr(limits, "MEMINFO", fake_meminfo(inputs / "meminfo", 4_000_000))
    assert limits.still_max_side(2000, 1500) == 655
    assert "dreaming the photo at 655 px on its long side instead of 1280" in caplog.text
    assert limits.still_max_side(128, 96) == 1280  # a small photo as ever
    # 1 GB free: not even TensorFlow fits.
    monkeypatch.setattr(limits, "MEMINFO", fake_meminfo(inputs / "meminfo", 1_000_000))
    monkeypatch.chdir(inputs)
    assert main(["-i", "photo.png", "-o", "out.png"]) == 2
    assert error_of(capsys).startswith(
        "error: a 128x96 photo needs, even dreamed at 256 px, about 1.1 GB of memory, more "
        "than 75% of the 1.0 GB available; give a smaller photo or free some memory"
    )
