"""The ``livedream`` command end to end: file renders, the demo, the virtual camera hint and the
preview window with its keys under a real X server (Xvfb)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import FAST, LivedreamProcess

from livedream.cli import main
from livedream.display import has_display


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


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
    assert "(default: vgg16_hed)" in out
    assert "(default: 2)" in out  # steps per frame
    assert "q/Esc quit" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "0"], "--steps: expected a number above 0, got 0"),
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
    tmp_path: Path, write_video: Any
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
    tmp_path: Path, write_video: Any, fake_vcam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import FAKE_BACKEND

    monkeypatch.setenv("LIVEDREAM_VCAM_BACKEND", FAKE_BACKEND)
    clip = write_video(tmp_path / "in.avi", frames=12, width=160, height=120, fps=25.0)
    assert (
        main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST, "--step-size", "0.05"]) == 0
    )
    received = fake_vcam.frames
    assert received
    assert all(frame.shape == (120, 160, 3) for frame in received)
    inputs, _ = read_video(clip)
    # What a call app sees is dreamed: no frame it got is a plain input frame.
    nearest = [min(difference(frame, i) for i in inputs) for frame in received if frame.any()]
    assert nearest
    assert min(nearest) > 4.0
    assert fake_vcam.closed == 1


def test_virtual_camera_that_cannot_start_gives_the_setup_hint(
    tmp_path: Path,
    write_video: Any,
    fake_vcam: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conftest import FAKE_BACKEND

    monkeypatch.setenv("LIVEDREAM_VCAM_BACKEND", FAKE_BACKEND)
    fake_vcam.fail_open = "device busy"
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
    tmp_path: Path, write_video: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/dev/video0").exists() or sys.platform != "linux":
        pytest.skip("this machine has a video device: the no-backend case cannot be staged")
    clip = write_video(tmp_path / "in.avi", frames=5)
    code = main(["-i", str(clip), "--virtual-cam", "--no-preview", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=livedream" in err


# --- the preview window, in a real livedream process on Xvfb -------------------------------------


def photo(path: Path) -> np.ndarray:
    """A bright, smooth, colourful photo: easy to find on screen, clearly changed by a dream."""
    ys, xs = np.mgrid[0:96, 0:128].astype(np.float32)
    image = np.dstack(
        [120 + 100 * np.sin(xs / 9), 150 + 80 * np.cos(ys / 7), 170 + 60 * np.sin((xs + ys) / 11)]
    ).astype(np.uint8)
    cv2.imwrite(str(path), image)
    return image


def window_pixels(x_screen: Any, title: str, size: tuple[int, int]) -> np.ndarray | None:
    """The window's content, resized to ``size`` (w, h), or None while it is not mapped."""
    window = x_screen.find_window(title)
    if window is None:
        return None
    root = x_screen._d().screen().root
    geometry = window.get_geometry()
    origin = root.translate_coords(window, 0, 0)
    screen = x_screen.grab()
    x, y = max(0, origin.x), max(0, origin.y)
    crop = screen[y : y + geometry.height, x : x + geometry.width]
    if crop.size == 0:
        return None
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def wait_for(condition: Any, timeout: float = 60.0) -> Any:
    """Polls ``condition()`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def shown_when(x_screen: Any, size: tuple[int, int], check: Any) -> Any:
    """A condition for ``wait_for``: the window's pixels once ``check(pixels)`` holds."""

    def condition() -> np.ndarray | None:
        pixels = window_pixels(x_screen, "livedream", size)
        return pixels if pixels is not None and check(pixels) else None

    return condition


def test_preview_shows_the_dream_and_the_keys_do_what_they_say(
    x_screen: Any, tmp_path: Path
) -> None:
    assert has_display()
    image = photo(tmp_path / "photo.png")
    size = (image.shape[1], image.shape[0])
    run = LivedreamProcess(
        ["-i", "photo.png", "--preview", "--fps", "10", *FAST, "--step-size", "0.06"], cwd=tmp_path
    )
    try:
        # The dreamed photo shows: bright like the photo (not the dark loading frame), but
        # clearly changed (the dream deepens on a still from frame to frame).
        shown = wait_for(
            shown_when(x_screen, size, lambda p: p.mean() > 100 and difference(p, image) > 15)
        )
        dreamed = difference(shown, image)

        def press(key: str, note: str) -> None:
            """Presses ``key`` until the app logs ``note`` (an X key event can be lost while
            the window is busy being redrawn)."""
            for _ in range(3):
                before = run.err.count(note)
                x_screen.press_key(key, window_title="livedream")
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    if run.err.count(note) > before:
                        return
                    time.sleep(0.05)
            raise AssertionError(f"key {key!r} did not lead to {note!r}")

        press("space", "dream off")  # the plain photo shows
        plain = wait_for(shown_when(x_screen, size, lambda p: difference(p, image) < dreamed / 2))
        assert difference(plain, image) < dreamed / 2
        keys = {
            "space": "dream on",
            "equal": "strength 0.0750",
            "minus": "strength 0.0600",
            "bracketright": "steps 3",
            "bracketleft": "steps 2",
            "l": "layers ",
            "f": "flow carry off",
            "r": "dream reset",
            "m": "mirror on",
            "h": "overlay on",
            "s": "saved livedream-",
        }
        for key, note in keys.items():
            press(key, note)
        press("q", "quit")
        assert run.wait() == 0
    finally:
        run.close()
    shots = list(tmp_path.glob("livedream-*.png"))
    assert len(shots) == 1
    assert cv2.imread(str(shots[0])).shape == image.shape


def test_closing_the_preview_window_quits(x_screen: Any, tmp_path: Path) -> None:
    photo(tmp_path / "photo.png")
    run = LivedreamProcess(["-i", "photo.png", "--preview", *FAST], cwd=tmp_path)
    try:
        wait_for(lambda: x_screen.find_window("livedream") is not None)
        time.sleep(0.5)
        x_screen.close_window("livedream")
        assert run.wait() == 0
    finally:
        run.close()


def test_a_terminal_shows_a_progress_bar_that_ends_at_100_percent(
    tmp_path: Path, write_video: Any
) -> None:
    from rich.console import Console

    from livedream.args import parse_args
    from livedream.run import StreamRun
    from livedream.sources import open_source

    clip = write_video(tmp_path / "in.avi", frames=12)
    config, _ = parse_args(["-i", str(clip), "-o", str(tmp_path / "out.avi"), *FAST])
    console = Console(force_terminal=True, record=True, width=120, height=60)
    with open_source(config.input) as source:
        assert StreamRun(config, source, console).run() == 0
    text = console.export_text()
    assert "dreaming" in text
    assert "12/12" in text


def test_a_terminal_shows_the_live_status_table(
    tmp_path: Path, fake_vcam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import FAKE_BACKEND
    from rich.console import Console

    from livedream.args import parse_args
    from livedream.run import StreamRun
    from livedream.sources import open_source

    monkeypatch.setenv("LIVEDREAM_VCAM_BACKEND", FAKE_BACKEND)
    photo(tmp_path / "photo.png")
    args = ["-i", str(tmp_path / "photo.png"), "--virtual-cam", "--no-preview", "--max-frames"]
    config, _ = parse_args([*args, "6", *FAST])
    console = Console(force_terminal=True, record=True, width=120, height=60)
    with open_source(config.input, fps=config.fps) as source:
        assert StreamRun(config, source, console).run() == 0
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
    fake_vcam: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conftest import FAKE_BACKEND

    import livedream.run

    # Whether this machine counts as slow is set by the threshold; the wiring is under test.
    monkeypatch.setattr(livedream.run, "SLOW_HINT_FPS", threshold)
    monkeypatch.setenv("LIVEDREAM_VCAM_BACKEND", FAKE_BACKEND)
    photo(tmp_path / "photo.png")
    args = ["-i", str(tmp_path / "photo.png"), "--virtual-cam", "--no-preview"]
    assert main([*args, "--max-frames", "22", *FAST]) == 0
    err = capsys.readouterr().err
    assert ("--dream-size 240x180 or --steps 1 is faster" in err) is hinted
