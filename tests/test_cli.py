"""The ``livedream`` command end to end: file renders, the demo, the virtual camera hint and the
preview window with its keys under a real X server (Xvfb)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import (
    FAST,
    FakeCameraLog,
    LivedreamProcess,
    WriteVideo,
    XScreen,
    difference,
    overlay_scores,
    photo,
    read_video,
    stream_run,
    wait_for,
    write_textured_video,
)

from livedream.cli import main


def test_help_shows_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--input",
        "--output",
        "--preview",
        "--virtual-cam",
        "--dream-size",
        "--blend",
        "--no-flow",
        "--octaves",
        "--precision",
        "--compile",
        "--max-frames",
        "--demo",
    ):
        assert flag in out
    assert "(default: auto)" in out  # --model: inception_v3 or vgg16_hed, as this machine has
    assert "(default: 2)" in out  # steps per frame
    assert "q/Esc quit" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "0"], "--steps: expected a whole number from 1 to 250, got 0"),
        (["--dream-size", "0x0"], "--dream-size: expected a size from 16x16"),
        (["--dream-size", "big"], "expected WIDTHxHEIGHT such as 320x240, got 'big'"),
        (["--blend", "2"], "--blend: expected a number from 0 to 1, got 2"),
        (["--precision", "int8"], "--precision: invalid choice: 'int8'"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_file_render_keeps_frame_count_size_and_fps_and_dreams_every_frame(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    clip = write_video(tmp_path / "in.avi", frames=20, width=160, height=120, fps=12.5)
    out = tmp_path / "out.avi"
    assert main(["-i", str(clip), "-o", str(out), *FAST, "--step-size", "0.05"]) == 0
    inputs, _ = read_video(clip)
    outputs, fps = read_video(out)
    assert len(outputs) == len(inputs) == 20
    assert outputs[0].shape == (120, 160, 3)
    assert fps == pytest.approx(12.5, abs=0.01)
    for before, after in zip(inputs, outputs, strict=True):
        assert np.abs(before.astype(int) - after).mean() > 4.0  # dreamed, beyond codec noise


def test_real_clip_render_keeps_its_frames(media_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bikes_dream.mp4"
    assert main(["-i", str(media_dir / "bikes.mp4"), "-o", str(out), *FAST]) == 0
    outputs, fps = read_video(out)
    assert len(outputs) == 250
    assert outputs[0].shape == (272, 640, 3)
    assert fps == pytest.approx(25.0, abs=0.01)


def test_demo_renders_the_bundled_clip_and_may_replace_its_own_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--demo", "--max-frames", "6", *FAST]) == 0
    frames, _ = read_video(tmp_path / "dream.mp4")
    assert len(frames) == 6
    assert frames[0].shape == (272, 640, 3)
    assert main(["--demo", "--max-frames", "4", *FAST]) == 0  # replaces its own dream.mp4
    assert len(read_video(tmp_path / "dream.mp4")[0]) == 4
    assert not list(tmp_path.glob(".*partial*"))


def test_photo_to_video_has_exactly_max_frames_each_dreamed_deeper(tmp_path: Path) -> None:
    image = photo(tmp_path / "photo.png")
    out = tmp_path / "out.avi"
    assert (
        main(["-i", str(tmp_path / "photo.png"), "-o", str(out), "--max-frames", "5", *FAST]) == 0
    )
    frames, _ = read_video(out)
    assert len(frames) == 5
    strengths = [difference(frame, image) for frame in frames]
    assert strengths[-1] > strengths[0] + 1.0  # the dream keeps deepening on a still


def test_photo_to_image_is_dreamed_in_octaves(tmp_path: Path) -> None:
    image = photo(tmp_path / "photo.png")
    out = tmp_path / "dream.png"
    args = ["-i", str(tmp_path / "photo.png"), "-o", str(out), "--octaves", "2"]
    assert main([*args, "--octave-steps", "3", *FAST[2:]]) == 0
    dreamed = cv2.imread(str(out))
    assert dreamed.shape == image.shape
    assert difference(dreamed, image) > 3.0


def test_virtual_camera_gets_the_dreamed_frames(
    tmp_path: Path, write_video: WriteVideo, vcam_env: FakeCameraLog
) -> None:
    fake_vcam = vcam_env
    # A moving scene: frames the compositor can follow (numbered flat colours are a cut each).
    clip = write_textured_video(tmp_path / "in.avi", frames=12, width=160, height=120)
    assert (
        main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST, "--step-size", "0.05"]) == 0
    )
    received = fake_vcam.frames
    assert received
    assert all(frame.shape == (120, 160, 3) for frame in received)
    inputs, _ = read_video(clip)
    # What a call app sees is dreamed: no frame it got is a plain input frame (0 from one).
    # Frames far from their keyframe carry a fainter dream; how far depends on the machine.
    nearest = [min(difference(frame, i) for i in inputs) for frame in received if frame.any()]
    assert nearest
    assert min(nearest) > 2.0
    assert fake_vcam.closed == 1


def test_virtual_camera_that_cannot_start_gives_the_setup_hint(
    tmp_path: Path,
    write_video: WriteVideo,
    vcam_env: FakeCameraLog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vcam_env.fail_open = "device busy"
    clip = write_video(tmp_path / "in.avi", frames=5)
    code = main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert "device busy" in err
    if sys.platform == "linux":
        assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in err
    else:
        assert "OBS" in err


def test_virtual_camera_without_a_backend_gives_the_setup_hint(
    tmp_path: Path, write_video: WriteVideo, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/dev/video0").exists() or sys.platform != "linux":
        pytest.skip("this machine has a video device: the no-backend case cannot be staged")
    clip = write_video(tmp_path / "in.avi", frames=5)
    code = main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=livedream" in err


# --- the preview window, in a real livedream process on Xvfb -------------------------------------


PHOTO_SIZE = (480, 360)  # wide enough for the overlay's longest line at its font size
DREAM_LINE = "dream 64x48, {steps} steps of {size:.4f}, flow {flow}, float32, graph{off}"


def dream_line(steps: int = 2, size: float = 0.01, flow: str = "on", off: str = "") -> str:
    return DREAM_LINE.format(steps=steps, size=size, flow=flow, off=off)


def overlay(model: str, dream: str) -> list[str]:
    """The preview's overlay lines (all but the model and dream lines only set the spacing)."""
    return [
        "10.0 fps out   2.0 dream",
        "latency   80 ms  dream age  300 ms",
        "dropped 0",
        "input photo.png",
        model,
        dream,
        "faces 0 protected, 0.35 of the dream kept",
    ]


class Preview:
    """The ``livedream`` preview window of a real process, as a user sees and drives it."""

    def __init__(self, run: LivedreamProcess, x_screen: XScreen, image: np.ndarray) -> None:
        self.run, self.x_screen, self.image = run, x_screen, image
        self.seen = "no window titled 'livedream'"  # what pixels() last found, for a failure

    def pixels(self) -> np.ndarray | None:
        shown = self.x_screen.window_pixels("livedream")
        if shown is None or shown.shape != self.image.shape:
            self.seen = f"window pixels {None if shown is None else shown.shape}"
            return None  # not mapped yet, or not yet at the picture's size
        self.seen = f"mean {shown.mean():.1f}, |shown - photo| {difference(shown, self.image):.2f}"
        return shown

    def when(self, check: Callable[[np.ndarray], bool], what: str, timeout: float = 120.0) -> Any:
        """The window's pixels once ``check(pixels)`` holds."""

        def condition() -> np.ndarray | None:
            shown = self.pixels()
            return shown if shown is not None and check(shown) else None

        try:
            return wait_for(condition, timeout, what)
        except AssertionError as exc:
            tail = "\n".join(self.run.err.splitlines()[-15:])
            raise AssertionError(
                f"{exc}; last seen: {self.seen}; the run's stderr:\n{tail}"
            ) from None

    def strength(self, shown: np.ndarray, reference: np.ndarray | None = None) -> float:
        """Mean |shown - input| below the overlay (the bottom half of the picture)."""
        half = self.image.shape[0] // 2
        ref = self.image if reference is None else reference
        return difference(shown[half:], ref[half:])

    def later(self, shown: np.ndarray, frames: int = 3) -> np.ndarray:
        """The window's pixels ``frames`` new pictures after ``shown``: each frame dreamed anew
        differs from the last (the dream's jitter), however fast or slow this machine is."""
        for _ in range(frames):
            last = shown
            shown = self.when(lambda p, last=last: not np.array_equal(p, last), "a new frame")
        return shown

    def settled(self) -> float:
        """The dream's strength once it stopped growing or fading (the carry's steady state):
        a few frames apart, it holds within 5 %."""

        def steady() -> float | None:
            first = self.when(lambda _: True, "the window")
            a, b = self.strength(first), self.strength(self.later(first))
            return b if abs(b - a) < 0.05 * max(a, b) else None

        return float(wait_for(steady, 120.0, "a steady dream"))

    def press(self, key: str, note: str) -> None:
        """Presses ``key`` once, as a user does. The app's log line ``note`` only tells that the
        press arrived (an X key event can be lost while the window is busy being redrawn, and
        then it is pressed again); what the key does is checked on the picture."""
        for _ in range(3):
            before = self.run.err.count(note)
            self.x_screen.press_key(key, window_title="livedream")
            deadline = time.monotonic() + 10.0  # arrived long before, unless lost
            while time.monotonic() < deadline:
                if self.run.err.count(note) > before:
                    return
                time.sleep(0.05)
        raise AssertionError(f"key {key!r} never arrived (no {note!r} in the log):\n{self.run.err}")

    def reads(self, model: str, dream: str, instead: tuple[str, str]) -> Any:
        """Waits until the overlay's model and dream lines read ``model`` and ``dream``, each
        better than the lines of ``instead`` (what they said before the key)."""

        def check(shown: np.ndarray) -> bool:
            lines = overlay(model, dream)
            dream_line = len(lines) - 2  # the model and dream lines come before the faces line
            for index, text, old in (
                (dream_line - 1, model, instead[0]),
                (dream_line, dream, instead[1]),
            ):
                if overlay_scores(shown, lines, index, [text])[0] < 0.5:
                    return False  # the line is not there (yet)
                if old != text:  # where the texts differ, the new one is what shows
                    new_score, old_score = overlay_scores(shown, lines, index, [text, old])
                    if not new_score > max(0.4, old_score + 0.2):
                        return False
            return True

        return self.when(check, f"the overlay to read {model!r}, {dream!r}", timeout=20.0)


def test_preview_shows_the_dream_and_each_key_does_what_it_says(
    x_screen: XScreen, tmp_path: Path
) -> None:
    image = photo(tmp_path / "photo.png", width=PHOTO_SIZE[0], height=PHOTO_SIZE[1])
    mirrored = np.ascontiguousarray(image[:, ::-1])
    args = ["-i", "photo.png", "--preview", "--fps", "15", *FAST, "--compile", "graph"]
    run = LivedreamProcess([*args, "--step-size", "0.01"], cwd=tmp_path)
    view = Preview(run, x_screen, image)
    model = "model vgg16_hed (block2_conv2)"
    try:
        # The dreamed photo shows: bright like the photo (not the dark loading frame), but
        # clearly changed (the dream deepens on a still from frame to frame).
        shown = view.when(lambda p: p.mean() > 100 and difference(p, image) > 10, "the dream")
        corner = (slice(0, 60), slice(0, 200))  # where the overlay's box goes

        # h: the overlay's box appears at the top left, darker than the picture under it, with
        # white text saying what is dreamed; the rest of the picture stays as it was.
        view.press("h", "overlay on")
        view.reads(model, dream_line(), instead=("", ""))
        boxed = view.pixels()
        assert boxed is not None
        assert boxed[corner].mean() < 0.7 * shown[corner].mean()
        assert view.strength(boxed) > 5  # below the box: still the dream

        # ] and [: one step more, one fewer, as the overlay says.
        view.press("bracketright", "steps 3")
        view.reads(model, dream_line(steps=3), instead=(model, dream_line()))
        view.press("bracketleft", "steps 2")
        view.reads(model, dream_line(), instead=(model, dream_line(steps=3)))

        # f: the flow carry goes off (a still has no motion, so the overlay tells).
        view.press("f", "flow carry off")
        view.reads(model, dream_line(flow="off"), instead=(model, dream_line()))

        # - and +: the dream settles weaker, then stronger (mean |out - in| falls, then rises);
        # left alone a settled dream neither fades nor grows.
        # Six presses: a quarter of the step, a weaker dream with a clear margin (the carry
        # keeps a share of the old dream, so three presses settled near the bar when loaded).
        settled = view.settled()
        for _ in range(6):
            view.press("minus", "strength ")
        weaker = dream_line(size=0.01 / 1.25**6, flow="off")
        view.reads(model, weaker, instead=(model, dream_line(flow="off")))
        view.when(lambda p: view.strength(p) < 0.8 * settled, "a weaker dream")
        weak = view.settled()
        for _ in range(6):
            view.press("equal", "strength ")
        view.reads(model, dream_line(flow="off"), instead=(model, weaker))
        view.when(lambda p: view.strength(p) > 1.25 * weak, "a stronger dream")

        # r: the carried dream is dropped: the picture is back near the plain photo, for a while.
        strong = view.strength(view.when(lambda _: True, "the window"))
        view.press("r", "dream reset")
        view.when(lambda p: view.strength(p) < 0.5 * strong, "the dream to restart", 10.0)

        # l: the next layer preset is dreamed, as the overlay says.
        view.press("l", "layers block4_conv3")
        new_model = "model vgg16_hed (block4_conv3)"
        view.reads(new_model, dream_line(flow="off"), instead=(model, dream_line(flow="off")))

        # space: dream off; the picture under the overlay is the plain photo.
        view.press("space", "dream off")
        view.reads(
            new_model,
            dream_line(flow="off", off=", off"),
            instead=(new_model, dream_line(flow="off")),
        )
        view.when(lambda p: view.strength(p) < 1.0, "the plain photo")

        # h again: the overlay goes; the whole picture is the plain photo.
        view.press("h", "overlay off")
        view.when(lambda p: difference(p, image) < 1.0, "the plain photo without the overlay")

        # m: the picture is mirrored.
        view.press("m", "mirror on")
        flipped = view.when(lambda p: difference(p, mirrored) < 1.0, "the mirrored photo")
        assert difference(flipped, image) > 10  # the photo is not symmetric

        # s: a PNG of the picture shown appears in the working folder.
        view.press("s", "saved livedream-")
        shots = list(tmp_path.glob("livedream-*.png"))
        assert len(shots) == 1
        saved = cv2.imread(str(shots[0]))
        assert saved.shape == image.shape
        assert difference(saved, mirrored) < 1.0

        # space: the dream is back on (mirrored).
        view.press("space", "dream on")
        view.when(lambda p: view.strength(p, mirrored) > 3.0, "the dream back on")

        # q: the window closes and the run ends well, within seconds.
        view.press("q", "quit")
        assert run.wait(20) == 0
        assert x_screen.find_window("livedream") is None
    finally:
        run.close()


def test_closing_the_preview_window_quits(x_screen: XScreen, tmp_path: Path) -> None:
    image = photo(tmp_path / "photo.png", width=PHOTO_SIZE[0], height=PHOTO_SIZE[1])
    run = LivedreamProcess(["-i", "photo.png", "--preview", *FAST], cwd=tmp_path)
    try:
        # The photo shows dreamed: the run has seen its window on screen for many frames
        # (closed before its first frame was mapped, a window could not be told from one
        # still being opened).
        view = Preview(run, x_screen, image)
        view.when(lambda p: p.mean() > 100 and difference(p, image) > 1, "the dream")
        x_screen.close_window("livedream")
        assert run.wait() == 0
    finally:
        run.close()


def test_a_terminal_shows_a_progress_bar_that_ends_at_100_percent(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    from rich.console import Console

    from livedream.args import parse_args
    from livedream.sources import open_source

    clip = write_video(tmp_path / "in.avi", frames=12)
    config, _ = parse_args(["-i", str(clip), "-o", str(tmp_path / "out.avi"), *FAST])
    console = Console(force_terminal=True, record=True, width=120, height=60)
    with open_source(config.input) as source:
        assert stream_run(config, source, console).run() == 0
    text = console.export_text()
    assert "dreaming" in text
    assert "12/12" in text


def test_a_terminal_shows_the_live_status_table(tmp_path: Path, vcam_env: FakeCameraLog) -> None:
    from rich.console import Console

    from livedream.args import parse_args
    from livedream.sources import open_source

    photo(tmp_path / "photo.png")
    args = ["-i", str(tmp_path / "photo.png"), "--virtual-cam", "--no-preview", "--max-frames"]
    config, _ = parse_args([*args, "6", *FAST])
    console = Console(force_terminal=True, record=True, width=120, height=60)
    with open_source(config.input, fps=config.fps) as source:
        assert stream_run(config, source, console).run() == 0
    text = console.export_text()
    for row in ("capture", "dream", "output", "latency", "p95", "dream age", "6 out", "dropped"):
        assert row in text
    assert "vgg16_hed (block2_conv2)" in text
    assert "64x48, 2 steps of 0.0120" in text


def test_list_cameras_lists_what_opens_or_says_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-cameras"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out
    if not any(Path(f"/dev/video{i}").exists() for i in range(10)):
        assert out == ["no webcams found (checked indices 0-9)"]
    else:  # one line a camera: "0: 640x480 @ 30 fps (V4L2)"
        assert all(":" in line and "x" in line for line in out)


@pytest.mark.parametrize(("threshold", "hinted"), [(1e6, True), (0.0, False)])
def test_a_slow_live_dream_says_how_to_go_faster(
    threshold: float,
    hinted: bool,
    tmp_path: Path,
    vcam_env: FakeCameraLog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import livedream.run

    # Whether this machine counts as slow is set by the threshold; the wiring is under test.
    monkeypatch.setattr(livedream.run, "SLOW_HINT_FPS", threshold)
    photo(tmp_path / "photo.png")
    args = ["-i", str(tmp_path / "photo.png"), "--virtual-cam", "--no-preview"]
    assert main([*args, "--max-frames", "22", *FAST]) == 0
    err = capsys.readouterr().err
    assert ("--dream-size 240x180 or --steps 1 is faster" in err) is hinted
