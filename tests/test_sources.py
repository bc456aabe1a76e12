"""Sources: every bad input fails with one clear line; real files give every frame."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import NumberedFrame, WriteVideo

from livedream.errors import SourceError
from livedream.sources import (
    ImageSource,
    SyntheticSource,
    VideoFileSource,
    WebcamSource,
    list_cameras,
    open_source,
)


def _read_all(source: VideoFileSource) -> list[np.ndarray]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.mp4", None, "no such file"),
        ("a_folder.mp4", "dir", "is a folder"),
        ("empty.mp4", b"", "empty"),
        ("random.mp4", bytes(range(256)) * 40, "not a video"),
        ("notes.mp4", b"just some notes\n" * 20, "text"),
        ("notes.png", b"this is not a picture\n" * 14, "not an image"),
        ("empty.jpg", b"", "empty"),
        ("missing.png", None, "no such file"),
    ],
)
def test_bad_file_inputs_fail_with_a_message_naming_the_file(
    tmp_path: Path, name: str, content: bytes | str | None, expected: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    message = str(info.value)
    assert name in message
    assert expected in message
    assert "\n" not in message


def test_text_named_png_says_it_is_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("x" * 312)
    with pytest.raises(SourceError, match=r"notes\.png is not an image .*312 bytes of text"):
        open_source(str(path))


def test_missing_webcam_fails_with_the_list_cameras_hint() -> None:
    with pytest.raises(SourceError) as info:
        open_source("97")
    message = str(info.value)
    assert "webcam 97" in message
    assert "--list-cameras" in message
    with pytest.raises(SourceError, match="/dev/video97"):
        WebcamSource("/dev/video97")


def test_list_cameras_probes_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    cameras = list_cameras(max_index=3)
    if not any(Path(f"/dev/video{i}").exists() for i in range(4)):
        assert cameras == []  # nothing to find: nothing made up
    else:
        assert cameras
        assert all(camera.width > 0 and camera.height > 0 for camera in cameras)
    out, err = capfd.readouterr()
    assert "WARN" not in err and "WARN" not in out


def test_own_video_reads_every_frame_in_order(
    tmp_path: Path, write_video: WriteVideo, numbered_frame: NumberedFrame
) -> None:
    path = write_video(tmp_path / "clip.avi", frames=40, width=160, height=120, fps=20.0)
    with open_source(str(path)) as source:
        assert isinstance(source, VideoFileSource)
        assert (source.width, source.height, source.fps) == (160, 120, 20.0)
        assert source.frame_count == 40
        assert not source.is_live
        frames = _read_all(source)
        assert source.frames_read == 40
        assert not source.damaged
        assert source.read() is None  # stays at the end
    assert len(frames) == 40
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    # The colour encodes the index: MJPG is lossy, so compare roughly.
    for i in (0, 17, 39):
        assert np.abs(frames[i].astype(int) - numbered_frame(i, 160, 120)).mean() < 12


@pytest.mark.parametrize(
    ("name", "size", "count", "fps"),
    [("bikes.mp4", (640, 272), 250, 25.0), ("bigbuckbunny.mp4", (1280, 720), 132, 25.0)],
)
def test_sample_clip_reads_all_frames(
    media_dir: Path, name: str, size: tuple[int, int], count: int, fps: float
) -> None:
    with VideoFileSource(media_dir / name) as source:
        assert (source.width, source.height) == size
        assert source.frame_count == count
        assert source.fps == pytest.approx(fps)
        n = 0
        while (frame := source.read()) is not None:
            assert frame.shape == (size[1], size[0], 3)
            n += 1
        assert n == count
        assert not source.damaged


def test_video_truncated_half_way_is_reported_as_damaged(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    # AVI keeps its header in front, so a cut file still opens and decodes up to the cut.
    whole = write_video(tmp_path / "whole.avi", frames=60)
    cut = tmp_path / "input.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with VideoFileSource(cut) as source:
        assert source.frame_count == 60
        frames = _read_all(source)
        assert 0 < len(frames) < 58
        assert source.damaged
        message = source.damage_message
    assert "input.avi" in message
    assert f"decoding stopped at frame {len(frames)} of 60" in message
    assert f"the {len(frames)} frames before it were kept" in message


def test_sample_mp4_cut_half_way_fails_at_open(tmp_path: Path, media_dir: Path) -> None:
    # MP4 keeps its index (moov) at the end: a cut copy cannot be opened at all.
    cut = tmp_path / "bikes.mp4"
    data = (media_dir / "bikes.mp4").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"bikes\.mp4 is not a video .*damaged or incomplete"):
        open_source(str(cut))


def test_image_source_repeats_the_still(tmp_path: Path, numbered_frame: NumberedFrame) -> None:
    still = numbered_frame(5, 96, 64)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), still)
    with open_source(str(path), fps=12.0) as source:
        assert isinstance(source, ImageSource)
        assert not source.is_live  # a photo can wait for the dream; a camera cannot
        assert source.frame_count is None
        assert (source.width, source.height, source.fps) == (96, 64, 12.0)
        frames = [source.read() for _ in range(5)]
        np.testing.assert_array_equal(source.image, still)
    for frame in frames:
        assert frame is not None
        np.testing.assert_array_equal(frame, still)
    frames[0][:] = 0  # a consumer drawing on a frame does not change the next one
    assert np.array_equal(frames[1], still)


def test_image_source_without_repeat_gives_one_frame(
    tmp_path: Path, numbered_frame: NumberedFrame
) -> None:
    path = tmp_path / "still.jpg"
    cv2.imwrite(str(path), numbered_frame(1, 64, 48))
    with ImageSource(path, repeat=False) as source:
        assert source.frame_count == 1
        assert source.read() is not None
        assert source.read() is None


def test_video_named_as_image_fails_clearly(tmp_path: Path, write_video: WriteVideo) -> None:
    clip = write_video(tmp_path / "clip.avi", frames=3)
    disguised = tmp_path / "photo.png"
    shutil.copy(clip, disguised)
    with pytest.raises(SourceError, match=r"photo\.png is not an image .*AVI video"):
        open_source(str(disguised))


def test_synthetic_source_moves_and_is_deterministic() -> None:
    with (
        SyntheticSource(width=128, height=96, frames=6) as a,
        SyntheticSource(width=128, height=96, frames=6) as b,
    ):
        frames_a = [a.read() for _ in range(7)]
        frames_b = [b.read() for _ in range(7)]
        assert a.frame_count == 6
    assert frames_a[6] is None and frames_b[6] is None
    for fa, fb in zip(frames_a[:6], frames_b[:6], strict=True):
        assert fa is not None and fb is not None
        assert fa.shape == (96, 128, 3) and fa.dtype == np.uint8
        np.testing.assert_array_equal(fa, fb)
    for prev, nxt in itertools.pairwise(frames_a[:6]):
        assert prev is not None and nxt is not None
        assert np.count_nonzero(np.any(prev != nxt, axis=2)) > 50


def test_read_after_close_is_end_of_stream() -> None:
    source = SyntheticSource(frames=None)
    assert source.read() is not None
    source.close()
    source.close()
    assert source.read() is None


def test_a_character_device_path_is_opened_as_a_webcam() -> None:
    # /dev/v4l/by-id/... names are character devices like /dev/null, not files to decode.
    with pytest.raises(SourceError, match="cannot open webcam /dev/null"):
        open_source("/dev/null")


def test_closing_does_not_wait_for_a_read_stuck_in_a_driver() -> None:
    import threading
    import time

    from livedream.sources import Source

    class StuckCamera(Source):
        """A device whose read blocks in the driver until ``unstick`` is set."""

        is_live = True

        def __init__(self) -> None:
            super().__init__("stuck camera")
            self.width = self.height = 8
            self.reading = threading.Event()
            self.unstick = threading.Event()
            self.released = threading.Event()

        def _read(self) -> np.ndarray:
            self.reading.set()
            self.unstick.wait(10)
            return np.zeros((8, 8, 3), np.uint8)

        def _release(self) -> None:
            self.released.set()

    camera = StuckCamera()
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(camera.read()))
    reader.start()
    assert camera.reading.wait(5)
    started = time.monotonic()
    camera.close()
    # A shutdown is not held up by the driver (stuck for 10 s): a bound, not a timing.
    assert time.monotonic() - started < 5.0
    assert not camera.released.is_set()  # the device is still in the stuck read's hands
    camera.unstick.set()
    reader.join(5)
    assert results == [None]  # the frame read during closing is not handed out
    assert camera.released.is_set() and camera.closed
    assert camera.read() is None
