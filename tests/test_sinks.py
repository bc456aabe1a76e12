"""Sinks: files appear complete or not at all, the virtual camera never freezes, and the
preview window really shows the frame on a real X server (Xvfb)."""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from avclips import make_clip, picture, probe, top_level_boxes
from helpers import FakeCameraLog, NumberedFrame, XScreen, count_frames, video_fps, wait_for

from livedream.display import has_display
from livedream.errors import DisplayError, SinkError, VirtualCameraError
from livedream.preview import KEY_ESC, KEY_NONE, PreviewWindow, draw_hud
from livedream.sinks import (
    ImageFileSink,
    NullSink,
    VideoFileSink,
    VirtualCameraSink,
)


def _count_frames(path: Path) -> tuple[int, int, int, float]:
    """(frames decoded, width, height, fps) of a video file."""
    return (*count_frames(path), video_fps(path))


def _wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Whether ``condition()`` came true within ``timeout`` (a bound on a hang, far above what
    it takes on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mkv", ".mov"])
def test_video_file_sink_writes_every_frame(
    tmp_path: Path, ext: str, numbered_frame: NumberedFrame
) -> None:
    target = tmp_path / f"dream{ext}"
    with VideoFileSink(target, width=96, height=64, fps=24.0) as sink:
        for i in range(12):
            sink.write(numbered_frame(i, 96, 64))
            # Until close(), only the hidden temporary file exists.
            assert not target.exists()
            assert sink.temp_path.exists()
        assert sink.temp_path.parent == tmp_path
        assert sink.temp_path.name.startswith(".")
        assert sink.frames_written == 12
    assert target.exists()
    assert not sink.temp_path.exists()
    assert _count_frames(target) == (12, 96, 64, 24.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("ext", [".mp4", ".m4v", ".mov"])
def test_an_mp4_plays_while_written_and_is_published_with_its_index_in_front(
    tmp_path: Path, ext: str
) -> None:
    target = tmp_path / f"dream{ext}"
    with VideoFileSink(target, width=64, height=48, fps=25.0) as sink:
        for i in range(60):
            sink.write(picture(i, 64, 48))
        # Mid-run (or after a crash) the hidden file is fragmented and plays its first second.
        assert "moof" in top_level_boxes(sink.temp_path)
        assert len(probe(sink.temp_path).frame_times) >= 25
    boxes = top_level_boxes(target)
    assert "moof" not in boxes and boxes.index("moov") < boxes.index("mdat"), boxes
    found = probe(target)
    assert found.frame_times == pytest.approx([i / 25 for i in range(60)], abs=1e-3)
    assert (found.video_codec, found.pix_fmt) == ("h264", "yuv420p")
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_two_runs_writing_the_same_name_each_get_their_own_hidden_file(tmp_path: Path) -> None:
    target = tmp_path / "dream.mp4"
    with (
        VideoFileSink(target, width=64, height=48, fps=25.0) as first,
        VideoFileSink(target, width=64, height=48, fps=25.0, overwrite=True) as second,
    ):
        assert first.temp_path != second.temp_path
        for i in range(30):
            first.write(picture(i, 64, 48))
            if i < 10:
                second.write(picture(i, 64, 48))
        # Neither truncated nor interleaved the other's frames: what is out plays in order
        # (but for the B-frames waiting on a frame not written yet).
        so_far = probe(first.temp_path).frame_times
        assert len(so_far) > 10
        assert so_far[:10] == pytest.approx([i / 25 for i in range(10)], abs=1e-3)
        assert so_far == sorted(set(so_far))
        first.close()
        assert len(probe(target).frame_times) == 30
    assert len(probe(target).frame_times) == 10  # the last to finish holds the name
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not private


def test_a_symlink_planted_at_a_hidden_name_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "dream.mp4"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # The fixed names of earlier versions, and the pattern of today's.
    for name in (".dream.mp4.partial.mp4", ".dream.mp4.probe", ".dream.png.partial.png"):
        (tmp_path / name).symlink_to(victim)
    with VideoFileSink(target, width=64, height=48, fps=25.0) as sink:
        assert not sink.temp_path.is_symlink()
        for i in range(5):
            sink.write(picture(i, 64, 48))
    with ImageFileSink(tmp_path / "dream.png") as still:
        still.write(picture(0, 64, 48))
    assert victim.read_text() == "precious"
    assert len(probe(target).frame_times) == 5
    assert cv2.imread(str(tmp_path / "dream.png")) is not None


def test_a_gap_in_a_real_time_recording_costs_one_frame_of_work(tmp_path: Path) -> None:
    # A stream reconnects after 40 s: the recording keeps the gap (the frame before it shows
    # on), but the write after it encodes one frame, not one per missed slot.
    target = tmp_path / "live.mkv"
    with VideoFileSink(target, width=64, height=48, fps=25.0, realtime=True) as sink:
        encoder = sink._encoder
        for i in range(5):
            sink.write(picture(i, 64, 48), at=100.0 + i / 25)
        before = encoder.frames_written
        sink.write(picture(5, 64, 48), at=140.0)
        assert encoder.frames_written - before == 1
        sink.write(picture(6, 64, 48), at=140.04)
    times = probe(target).frame_times
    assert times == pytest.approx([0, 0.04, 0.08, 0.12, 0.16, 40.0, 40.04], abs=1e-3)


def test_video_file_sink_without_frames_creates_nothing(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "dream.mp4", width=64, height=64, fps=30.0)
    sink.close()
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_video_file_sink_close_twice_and_write_after_close(
    tmp_path: Path, numbered_frame: NumberedFrame
) -> None:
    target = tmp_path / "dream.avi"
    sink = VideoFileSink(target, width=64, height=48, fps=10.0)
    sink.write(numbered_frame(0, 64, 48))
    sink.close()
    sink.close()
    sink.write(numbered_frame(1, 64, 48))  # ignored, no error on a shutdown race
    assert _count_frames(target)[0] == 1


def test_video_file_sink_rejects_a_frame_of_another_size(tmp_path: Path) -> None:
    expected = r"unexpected frame shape: \(48, 60, 3\) != \(48, 64, 3\)"
    with VideoFileSink(tmp_path / "dream.mp4", width=64, height=48, fps=10.0) as sink:
        with pytest.raises(ValueError, match=expected):
            sink.write(np.zeros((48, 60, 3), np.uint8))
        assert sink.frames_written == 0


def test_existing_target_needs_overwrite(tmp_path: Path, numbered_frame: NumberedFrame) -> None:
    target = tmp_path / "dream.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(SinkError, match=r"dream\.mp4.*already exists.*--overwrite"):
        VideoFileSink(target, width=64, height=48, fps=10.0)
    assert target.read_bytes() == b"precious"
    with VideoFileSink(target, width=64, height=48, fps=10.0, overwrite=True) as sink:
        sink.write(numbered_frame(0, 64, 48))
        assert target.read_bytes() == b"precious"  # replaced only on close()
    assert _count_frames(target)[0] == 1


def test_missing_folder_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"folder .*nope.* does not exist"):
        VideoFileSink(tmp_path / "nope" / "dream.mp4", width=64, height=48, fps=10.0)


def test_unwritable_folder_is_a_sink_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            # Root writes anywhere: a path under a file fails for root too.
            afile = tmp_path / "afile.txt"
            afile.write_text("not a folder")
            target = afile / "dream.mp4"
            expected = r"afile\.txt is a file, not a folder"
        else:
            target = locked / "dream.mp4"
            expected = "not writable"
        with pytest.raises(SinkError, match=expected):
            VideoFileSink(target, width=64, height=48, fps=10.0)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name", ["dream.flv", "dream", "dream.png"])
def test_unknown_video_extension_is_a_sink_error(tmp_path: Path, name: str) -> None:
    expected = r"unknown video format.*\.mp4 \.m4v \.mov \.mkv \.webm \.avi"
    with pytest.raises(SinkError, match=expected):
        VideoFileSink(tmp_path / name, width=64, height=48, fps=10.0)


def test_image_file_sink_saves_the_last_frame(
    tmp_path: Path, numbered_frame: NumberedFrame
) -> None:
    target = tmp_path / "dream.png"
    with ImageFileSink(target) as sink:
        sink.write(numbered_frame(1, 80, 60))
        sink.write(numbered_frame(2, 80, 60))
        assert not target.exists()
    np.testing.assert_array_equal(cv2.imread(str(target)), numbered_frame(2, 80, 60))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dream.png"]
    with pytest.raises(SinkError, match="already exists"):
        ImageFileSink(target)
    with pytest.raises(SinkError, match="unknown image format"):
        ImageFileSink(tmp_path / "dream.gif")


def test_null_sink_counts() -> None:
    with NullSink() as sink:
        for _ in range(3):
            sink.write(np.zeros((4, 4, 3), np.uint8))
    assert sink.frames_written == 3


def test_draw_hud_darkens_a_box_and_writes_text() -> None:
    frame = np.full((240, 320, 3), 200, np.uint8)
    out = draw_hud(frame, ["12.3 fps", "latency 80 ms"])
    assert out is not frame
    assert (frame == 200).all()  # the input is untouched
    box = out[:30, :60]
    assert (box < 200).any() and (box == 255).any()  # darkened, with white text
    assert (out[200:, 250:] == 200).all()  # the rest of the frame is as it was
    np.testing.assert_array_equal(draw_hud(frame, []), frame)


# --- virtual camera ------------------------------------------------------------------------


def test_virtual_camera_sends_frames_in_order_and_repeats_the_last(
    fake_vcam: FakeCameraLog, numbered_frame: NumberedFrame
) -> None:
    frames = [numbered_frame(i, 64, 48) for i in range(1, 4)]
    with VirtualCameraSink(width=64, height=48, fps=100.0, backend="livedream-test") as sink:
        assert sink.device == "/dev/video-fake"
        for frame in frames:
            sink.write(frame)
            assert _wait_until(lambda f=frame: any(np.array_equal(x, f) for x in fake_vcam.frames))
        # No new write: the last frame keeps going out, so call apps do not freeze.
        before = len(fake_vcam.frames)
        assert _wait_until(lambda: len(fake_vcam.frames) >= before + 5)
        assert np.array_equal(fake_vcam.frames[-1], frames[-1])
        assert not sink.failure
    sent = [x for x in fake_vcam.frames if x.any()]  # black frames go out before the first write
    assert all(x.shape == (48, 64, 3) and x.dtype == np.uint8 for x in fake_vcam.frames)
    order = [next(i for i, f in enumerate(frames) if np.array_equal(x, f)) for x in sent]
    assert order == sorted(order)  # frames arrive in the order given
    assert set(order) == {0, 1, 2}
    assert sink.frames_sent == len(fake_vcam.frames)
    assert fake_vcam.opened == 1 and fake_vcam.closed == 1


def test_virtual_camera_open_failure_gives_the_setup_hint(fake_vcam: FakeCameraLog) -> None:
    fake_vcam.fail_open = "device /dev/video9 does not exist"
    with pytest.raises(VirtualCameraError) as info:
        VirtualCameraSink(width=64, height=48, fps=30.0, backend="livedream-test")
    message = str(info.value)
    assert "\n" not in message
    assert "device /dev/video9 does not exist" in message
    if platform.system() == "Linux":
        assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in message
    else:
        assert "OBS" in message


def test_virtual_camera_unknown_backend_lists_the_known_ones(fake_vcam: FakeCameraLog) -> None:
    with pytest.raises(VirtualCameraError, match=r"unknown virtual camera backend.*livedream-test"):
        VirtualCameraSink(width=64, height=48, fps=30.0, backend="nosuch")


def test_virtual_camera_failing_mid_run_is_reported_not_raised(
    fake_vcam: FakeCameraLog, numbered_frame: NumberedFrame
) -> None:
    fake_vcam.fail_after = 3
    with VirtualCameraSink(width=64, height=48, fps=100.0, backend="livedream-test") as sink:
        assert _wait_until(lambda: bool(sink.failure))
        assert "fake device went away" in sink.failure
        assert sink.name in sink.failure
        for i in range(5):
            sink.write(numbered_frame(i, 64, 48))  # must not raise: preview and file go on
    assert len(fake_vcam.frames) == 3
    assert fake_vcam.closed == 1


# --- preview window ------------------------------------------------------------------------


def _pump(
    window: PreviewWindow, frame: np.ndarray, until: Callable[[int], bool], timeout: float = 20.0
) -> int:
    """Show ``frame`` until ``until(key)`` holds (Qt needs a few event rounds); returns the key."""
    deadline = time.monotonic() + timeout
    while True:
        key = window.show(frame)
        if until(key) or time.monotonic() > deadline:
            return key
        time.sleep(0.01)


@pytest.mark.parametrize(("audio", "said"), [(None, False), ("aac", True)])
def test_the_file_says_it_carries_the_sound_only_when_the_input_has_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, audio: str | None, said: bool
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=3, audio=audio)
    out = tmp_path / "out.mp4"
    with (
        caplog.at_level(logging.INFO, logger="livedream"),
        VideoFileSink(out, width=64, height=48, fps=25.0, audio_from=source),
    ):
        pass
    writing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("writing")]
    assert len(writing) == 1
    assert ("with the input's sound" in writing[0]) == said


def test_preview_window_shows_the_frame_on_screen(x_screen: XScreen) -> None:
    frame = np.zeros((120, 200, 3), np.uint8)
    frame[:, :100] = (0, 0, 255)  # red left half (BGR)
    frame[:, 100:] = (0, 255, 0)  # green right half
    half = 100 * 120

    def on_screen() -> tuple[np.ndarray, np.ndarray]:
        screen = x_screen.grab()  # (H, W, 3) BGR
        return np.all(screen == (0, 0, 255), axis=2), np.all(screen == (0, 255, 0), axis=2)

    with PreviewWindow("livedream test show") as window:
        _pump(window, frame, lambda _: min(m.sum() for m in on_screen()) >= 0.8 * half)
        red, green = on_screen()
        assert window.is_open()
    # Most of each half is on screen in its exact colour (edges may be scaled)...
    assert red.sum() >= 0.8 * half
    assert green.sum() >= 0.8 * half
    # ...red on the left of green, so the colour order is right, and it is gone after close().
    assert np.nonzero(red)[1].max() < np.nonzero(green)[1].min()
    red_after, green_after = on_screen()
    assert red_after.sum() < 0.1 * half and green_after.sum() < 0.1 * half


def test_preview_window_returns_pressed_keys(x_screen: XScreen) -> None:
    frame = np.full((60, 80, 3), 90, np.uint8)
    with PreviewWindow("livedream test keys") as window:
        _pump(window, frame, lambda _: x_screen.find_window("livedream test keys") is not None)
        assert _pump(window, frame, lambda k: k == KEY_NONE) == KEY_NONE
        for key, code in [("q", ord("q")), ("h", ord("h")), ("Escape", KEY_ESC)]:
            # A press can be lost while a just-mapped window takes focus on a loaded machine:
            # press again then, a few times at most.
            got = KEY_NONE
            for _ in range(3):
                x_screen.press_key(key, window_title="livedream test keys")
                got = _pump(window, frame, lambda k: k != KEY_NONE, timeout=10.0)
                if got != KEY_NONE:
                    break
            assert got == code


def test_preview_window_comes_up_at_the_pictures_size_then_keeps_the_users(
    x_screen: XScreen,
) -> None:
    frame = np.full((120, 160, 3), 200, np.uint8)
    title = "livedream test size"

    def shape() -> tuple[int, ...] | None:
        shown = x_screen.window_pixels(title)
        return None if shown is None else shown.shape

    with PreviewWindow(title) as window:
        window.show(frame)  # asks for 160x120 before the window is mapped
        wait_for(lambda: (cv2.waitKey(1), x_screen.find_window(title))[1], 10, "the window")
        # Qt can map a new window at its own size after that first ask (a loaded machine):
        # staged here by resizing it before it was ever seen at the picture's size.
        x_screen.resize_window(title, 320, 180)
        wait_for(lambda: (cv2.waitKey(1), shape() == (180, 320, 3))[1], 10, "the knocked size")
        _pump(window, frame, lambda _: shape() == (120, 160, 3))
        assert shape() == (120, 160, 3)
        # Seen at its size once, the window is the user's: a resize stays.
        x_screen.resize_window(title, 240, 180)
        _pump(window, frame, lambda _: shape() == (180, 240, 3))
        for _ in range(20):
            window.show(frame)
        assert shape() == (180, 240, 3)


def test_preview_window_closed_by_the_user_stays_closed(x_screen: XScreen) -> None:
    frame = np.full((60, 80, 3), 30, np.uint8)
    with PreviewWindow("livedream test close") as window:
        _pump(window, frame, lambda _: x_screen.find_window("livedream test close") is not None)
        assert window.is_open()
        x_screen.close_window("livedream test close")
        _pump(window, frame, lambda _: not window.is_open())
        assert not window.is_open()
        assert window.show(frame) == KEY_NONE  # does not pop up again
        assert x_screen.find_window("livedream test close") is None


def test_preview_window_closed_before_it_was_ever_seen_ends_quietly(x_screen: XScreen) -> None:
    """Closed by the user while it showed the loading screen, before the run had seen it
    mapped: the first picture (another size) ends the preview instead of an OpenCV error."""
    title = "livedream test early close"
    with PreviewWindow(title) as window:  # mapped, but not yet asked whether it is
        wait_for(lambda: (cv2.waitKey(1), x_screen.find_window(title))[1], 10, "the window")
        x_screen.close_window(title)
        wait_for(lambda: (cv2.waitKey(1), x_screen.find_window(title) is None)[1], 10, "closed")
        assert window.show(np.full((120, 160, 3), 200, np.uint8)) == KEY_NONE
        assert window.wants_stop
        assert x_screen.find_window(title) is None  # not brought back


def test_no_display_raises_display_error_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    with pytest.raises(DisplayError) as info:
        PreviewWindow()
    message = str(info.value)
    assert "no display" in message
    assert "--no-preview" in message and "--output" in message and "--virtual-cam" in message


def test_display_without_a_server_is_a_display_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Qt aborts the process when DISPLAY points nowhere: the check must come first.
    free = next(n for n in range(250, 400) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    monkeypatch.setenv("DISPLAY", f":{free}")
    assert not has_display()
    with pytest.raises(DisplayError, match=f"no X server answers on DISPLAY=:{free}"):
        PreviewWindow()


def test_has_display_says_whether_an_x_server_answers(
    xvfb_display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("DISPLAY", xvfb_display)
    assert has_display()


def test_a_failed_write_never_replaces_an_existing_file(
    tmp_path: Path,
    numbered_frame: NumberedFrame,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from livedream.errors import OutputWriteError

    target = tmp_path / "keep.mp4"
    target.write_bytes(b"an earlier render")
    sink = VideoFileSink(target, width=64, height=48, fps=10.0, overwrite=True)

    class FillingDisk:
        """The real output container, until the disk fills up after a few packets."""

        def __init__(self, container: Any) -> None:
            self.container, self.muxed = container, 0

        def mux(self, packets: object) -> None:
            self.muxed += 1
            if self.muxed > 3:
                raise OSError(28, "No space left on device")
            self.container.mux(packets)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.container, name)

    monkeypatch.setattr(sink._encoder, "_out", FillingDisk(sink._encoder._out))
    with pytest.raises(OutputWriteError, match="No space left"):
        for i in range(30):
            sink.write(numbered_frame(i, 64, 48))
    with caplog.at_level(logging.WARNING):
        sink.close()
    assert target.read_bytes() == b"an earlier render"  # not replaced by a broken file
    assert sink.temp_path.exists()  # the frames so far are kept where the message says
    assert f"the frames so far are in {sink.temp_path}" in caplog.text
