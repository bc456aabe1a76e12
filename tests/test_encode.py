"""VideoEncoder: files browsers play (H.264, VP9 in WebM) and that play however writing ends,
every frame at its time (clock jumps followed on), and the input's sound carried along, in
sync with the picture and cut where the video ends."""

from __future__ import annotations

import errno
import io
import logging
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from avclips import (
    click_times,
    flash_times,
    make_clip,
    make_flash_clip,
    picture,
    playable_frame_times,
    probe,
    source_frames,
    top_level_boxes,
)

from livedream.encode import VIDEO_EXTENSIONS, VideoEncoder
from livedream.errors import OutputWriteError, SinkError
from livedream.sources import VideoFileSource

MEDIA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media"
FPS = 25
FRAME = 1 / FPS


def encode(path: Path, frames: int, **kwargs: object) -> Path:
    with VideoEncoder(path, width=160, height=120, fps=FPS, **kwargs) as enc:  # type: ignore[arg-type]
        for i in range(frames):
            enc.write(picture(i))
    return path


def test_mp4_is_h264_yuv420p_with_every_frame_and_an_index_per_fragment(tmp_path: Path) -> None:
    # The encoder writes an MP4 fragmented, so that it plays however writing ends; the file
    # sink then publishes it with one index in front (test_sinks).
    out = encode(tmp_path / "dream.mp4", 30)
    found = probe(out)
    assert found.video_codec == "h264"
    assert (found.width, found.height, found.pix_fmt) == (160, 120, "yuv420p")
    assert len(found.frame_times) == 30
    assert found.average_rate == FPS
    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("moof") < boxes.index("mdat"), boxes
    assert found.audio_codecs == []  # no sound asked for, none written


@pytest.mark.parametrize(
    ("extension", "codec", "index_in_front"),
    [
        (".m4v", "h264", True),
        (".mov", "h264", True),
        (".mkv", "h264", False),
        (".webm", "vp9", False),
        (".avi", "mjpeg", False),
    ],
)
def test_each_extension_gets_its_codec_and_every_frame(
    tmp_path: Path, extension: str, codec: str, index_in_front: bool
) -> None:
    out = encode(tmp_path / f"dream{extension}", 20)
    found = probe(out)
    assert found.video_codec == codec
    assert (found.width, found.height) == (160, 120)
    assert len(found.frame_times) == 20
    assert found.frame_times == pytest.approx([i * FRAME for i in range(20)], abs=1e-3)
    if index_in_front:
        boxes = top_level_boxes(out)
        assert boxes.index("moov") < boxes.index("mdat"), boxes


def test_the_pictures_survive_encoding(tmp_path: Path) -> None:
    out = encode(tmp_path / "dream.mp4", 10)
    decoded = [frame for frame, _ in source_frames(out)]
    for i, frame in enumerate(decoded):
        # Colour order and level range kept: a swapped BGR/RGB or range would be off by ~100.
        error = np.abs(frame.astype(np.int16) - picture(i).astype(np.int16)).mean()
        assert error < 12, (i, error)


def test_odd_sizes_lose_their_last_column_and_row(tmp_path: Path) -> None:
    with VideoEncoder(tmp_path / "odd.mp4", width=161, height=121, fps=FPS) as enc:
        for i in range(5):
            enc.write(picture(i, 161, 121))
    found = probe(tmp_path / "odd.mp4")
    assert (found.width, found.height) == (160, 120)
    assert len(found.frame_times) == 5


@pytest.mark.parametrize("extension", [".mp4", ".webm", ".avi"])
def test_quality_trades_size(tmp_path: Path, extension: str) -> None:
    texture = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    sizes = {}
    for quality in (15, 35):
        out = tmp_path / f"q{quality}{extension}"
        with VideoEncoder(out, width=160, height=120, fps=FPS, quality=quality) as enc:
            for i in range(10):
                enc.write(np.roll(texture, 3 * i, axis=1))
        sizes[quality] = out.stat().st_size
    assert sizes[35] < sizes[15] / 2, sizes


def test_variable_frame_rate_keeps_each_frames_time(tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.05, 0.2, 0.21, 0.5, 0.9, 0.933, 1.4, 1.41]
    for extension in (".mp4", ".mkv", ".webm"):
        out = tmp_path / f"vfr{extension}"
        with VideoEncoder(out, width=160, height=120, fps=FPS) as enc:
            for i, t in enumerate(times):
                enc.write(picture(i), pts=t)
        assert probe(out).frame_times == pytest.approx(times, abs=1e-3), extension


def test_sound_is_copied_unchanged_and_lasts_as_long_as_the_video(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=40, audio="aac")
    out = tmp_path / "dream.mp4"
    with VideoEncoder(out, width=160, height=120, fps=FPS, audio_from=source) as enc:
        for frame, t in source_frames(source):
            enc.write(frame, t)
    found, original = probe(out), probe(source)
    assert len(found.frame_times) == 40
    assert found.audio_codecs == ["aac"]
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)
    assert found.audio_ends[0] == pytest.approx(original.audio_ends[0], abs=FRAME)
    # Copied, not re-encoded: the same packets, byte for byte.
    assert found.audio_payloads[0] == original.audio_payloads[0][: len(found.audio_payloads[0])]
    assert len(found.audio_payloads[0]) >= len(original.audio_payloads[0]) - 1


def test_an_interrupted_render_keeps_the_sound_up_to_its_last_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=50, audio="aac")
    out = tmp_path / "dream.mp4"
    enc = VideoEncoder(out, width=160, height=120, fps=FPS, audio_from=source)
    for frame, t in source_frames(source)[:15]:
        enc.write(frame, t)
    enc.close()  # as on Ctrl+C
    found = probe(out)
    assert len(found.frame_times) == 15  # playable, every written frame there
    assert found.video_end == pytest.approx(15 * FRAME, abs=1e-3)
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)


@pytest.mark.parametrize(
    ("sound", "extension", "expected"),
    [
        ("pcm_s16le", ".mp4", "aac"),  # re-encoded: mp4 is for browsers
        ("ac3", ".mp4", "aac"),
        ("aac", ".webm", "opus"),
        ("mp3", ".mp4", "mp3"),  # copied
        ("pcm_s16le", ".mkv", "pcm_s16le"),
        ("ac3", ".mkv", "ac3"),
    ],
)
def test_each_container_gets_sound_it_holds_cut_to_the_video(
    tmp_path: Path, sound: str, extension: str, expected: str
) -> None:
    source = make_clip(tmp_path / "in.mkv", frames=40, audio=sound)
    out = tmp_path / f"dream{extension}"
    with VideoEncoder(out, width=160, height=120, fps=FPS, audio_from=source) as enc:
        for frame, t in source_frames(source)[:20]:
            enc.write(frame, t)
    found = probe(out)
    assert found.audio_codecs == [expected]
    assert len(found.frame_times) == 20
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)


def test_no_sound_in_gives_no_sound_out(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "silent.mp4", frames=10, audio=None)
    out = encode(tmp_path / "dream.mp4", 10, audio_from=source)
    found = probe(out)
    assert found.audio_codecs == []
    assert len(found.frame_times) == 10


def test_real_clip_keeps_its_sound(tmp_path: Path) -> None:
    source = MEDIA_DIR / "bigbuckbunny.mp4"
    if not source.exists():
        pytest.skip(f"{source} not here (sample media live outside the project)")
    out = tmp_path / "bunny.mp4"
    original = probe(source)
    with VideoEncoder(out, width=320, height=180, fps=FPS, audio_from=source) as enc:
        for frame, t in source_frames(source):
            enc.write(np.ascontiguousarray(frame[::4, ::4]), t)
    found = probe(out)
    assert len(found.frame_times) == len(original.frame_times)
    assert found.audio_codecs == ["aac"]
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)
    assert found.audio_ends[0] == pytest.approx(original.audio_ends[0], abs=FRAME)


def test_a_hidden_temporary_name_gets_the_targets_format(tmp_path: Path) -> None:
    out = tmp_path / ".dream.webm.partial"
    with VideoEncoder(out, extension=".webm", width=160, height=120, fps=FPS) as enc:
        enc.write(picture(0))
    found = probe(out)
    assert (found.format, found.video_codec) == ("matroska,webm", "vp9")


def test_close_twice_and_write_after_close(tmp_path: Path) -> None:
    enc = VideoEncoder(tmp_path / "dream.mp4", width=160, height=120, fps=FPS)
    enc.write(picture(0))
    enc.close()
    enc.close()
    enc.write(picture(1))  # dropped, no error
    assert enc.closed
    assert enc.frames_written == 1
    assert len(probe(tmp_path / "dream.mp4").frame_times) == 1


def test_close_from_another_thread_while_writing(tmp_path: Path) -> None:
    out = tmp_path / "dream.mp4"
    enc = VideoEncoder(out, width=160, height=120, fps=FPS)
    some_written = threading.Event()

    def writer() -> None:
        for i in range(200):
            enc.write(picture(i))
            if i == 5:
                some_written.set()

    thread = threading.Thread(target=writer, name="test-writer")
    thread.start()
    assert some_written.wait(30)
    enc.close()
    thread.join(30)
    assert len(probe(out).frame_times) == enc.frames_written >= 6


@pytest.mark.parametrize("name", ["dream.gif", "dream.mpg", "dream"])
def test_unknown_extension_is_a_sink_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(SinkError, match=r"unknown video format.*expected one of .*\.webm"):
        VideoEncoder(tmp_path / name, width=160, height=120, fps=FPS)
    assert not (tmp_path / name).exists()
    assert {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm"} <= set(VIDEO_EXTENSIONS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": 60}, r"quality must be 0 \(best\) \.\. 51.*got 60"),
        ({"fps": 0}, r"fps above 0.*got 160x120 at 0 fps"),
        ({"audio_from": "/no/such/clip.mp4"}, r"cannot read the sound of /no/such/clip.mp4"),
    ],
)
def test_bad_settings_are_sink_errors_and_leave_no_file(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"width": 160, "height": 120, "fps": FPS, **kwargs}
    with pytest.raises(SinkError, match=message):
        VideoEncoder(tmp_path / "dream.mp4", **settings)  # type: ignore[arg-type]
    assert not (tmp_path / "dream.mp4").exists()


def test_missing_folder_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="No such file or directory"):
        VideoEncoder(tmp_path / "gone" / "dream.mp4", width=160, height=120, fps=FPS)


def test_disk_full_is_an_output_write_error() -> None:
    full = Path("/dev/full")  # every write fails with ENOSPC
    if not full.exists():
        pytest.skip("no /dev/full on this system")
    enc = VideoEncoder(full, extension=".mkv", width=160, height=120, fps=FPS)
    noise = np.random.default_rng(0)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        for _ in range(500):
            enc.write(noise.integers(0, 256, (120, 160, 3), np.uint8))
        enc.close()
    enc.close()  # lets go of the file without a second error
    assert full.exists()


class FillingDisk(io.FileIO):
    """A real file on a disk that is full after ``room`` bytes: a write past it fails ENOSPC."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path, "w+b")
        self.room = room

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("extension", [".mp4", ".mov", ".mkv", ".webm", ".avi"])
def test_a_full_disk_leaves_a_file_that_plays_all_but_its_last_second(
    tmp_path: Path, extension: str
) -> None:
    path = tmp_path / f"partial{extension}"
    noise = np.random.default_rng(0)  # noise: every frame adds to the file
    with FillingDisk(path, room=600_000) as disk:
        enc = VideoEncoder(path, width=160, height=120, fps=FPS, file=disk)
        written = 0
        with pytest.raises(OutputWriteError, match="No space left on device"):
            for _ in range(500):
                enc.write(noise.integers(0, 256, (120, 160, 3), np.uint8))
                written += 1
        enc.close()
    times = playable_frame_times(path)  # the frames so far play, but for the last second
    whole = [i * FRAME for i in range(written - FPS)]
    assert times[: len(whole)] == pytest.approx(whole)
    assert times == sorted(set(times)) and len(times) <= written


@pytest.mark.parametrize(
    ("given", "made"), [(".mkv", ".mp4"), (".ts", ".mp4"), (".mkv", ".avi"), (".mp4", ".webm")]
)
def test_sound_stays_with_its_picture_when_the_video_starts_late(
    tmp_path: Path, given: str, made: str
) -> None:
    # The sound starts 0.48 s before the picture (a camera's .MTS, an OBS recording): the
    # click at input time 1.0 s must sound with the white frame of input time 1.0 s.
    clip = make_flash_clip(tmp_path / f"late{given}", video_start=0.48, flash_at=1.0)
    out = tmp_path / f"dream{made}"
    with (
        VideoFileSource(clip) as source,
        VideoEncoder(out, width=64, height=48, fps=FPS, audio_from=clip) as enc,
    ):
        while (frame := source.read()) is not None:
            enc.write(frame, source.position)
    assert click_times(out) == pytest.approx(flash_times(out), abs=FRAME)
    # The file starts with the first frame: the sound before it is gone.
    assert flash_times(out) == pytest.approx([0.52], abs=FRAME / 2)


def _one_second_ts(path: Path) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(FPS):
            frame = av.VideoFrame.from_ndarray(picture(i, 64, 48), format="bgr24")
            frame.pts = i
            out.mux(video.encode(frame.reformat(format="yuv420p")))
        out.mux(video.encode(None))
    return path


def test_a_clock_that_jumps_back_keeps_the_spacing_and_the_duration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    part = _one_second_ts(tmp_path / "part.ts").read_bytes()
    joined = tmp_path / "joined.ts"  # cat part.ts part.ts > joined.ts: the clock starts over
    joined.write_bytes(part + part)
    out = tmp_path / "dream.mp4"
    with (
        caplog.at_level(logging.WARNING),
        VideoFileSource(joined) as source,
        VideoEncoder(out, width=64, height=48, fps=FPS) as enc,
    ):
        while (frame := source.read()) is not None:
            enc.write(frame, source.position)
    times = probe(out).frame_times
    assert len(times) == 2 * FPS
    assert np.diff(times) == pytest.approx(FRAME, abs=1e-3)  # no squeeze, no gap
    assert times[-1] + FRAME == pytest.approx(2.0, abs=FRAME)
    jumps = [r.getMessage() for r in caplog.records if "jumps" in r.getMessage()]
    assert len(jumps) == 1 and "from 0.960 s to 0.000 s at frame 25" in jumps[0]


def test_the_sound_follows_the_pictures_jump(tmp_path: Path) -> None:
    part = make_flash_clip(tmp_path / "part.ts", video_start=0.0, flash_at=0.5, seconds=1.0)
    joined = tmp_path / "joined.ts"  # a white frame and a click at 0.5 s of each part
    joined.write_bytes(part.read_bytes() * 2)
    out = tmp_path / "dream.mp4"
    with (
        VideoFileSource(joined) as source,
        VideoEncoder(out, width=64, height=48, fps=FPS, audio_from=joined) as enc,
    ):
        while (frame := source.read()) is not None:
            enc.write(frame, source.position)
    assert flash_times(out) == pytest.approx([0.5, 1.5], abs=FRAME)
    assert click_times(out) == pytest.approx(flash_times(out), abs=FRAME)
    found = probe(out)
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)


def test_a_clock_that_jumps_ahead_closes_the_gap(tmp_path: Path) -> None:
    out = tmp_path / "dream.mkv"
    times = [i * FRAME for i in range(10)] + [60 + i * FRAME for i in range(10)]
    with VideoEncoder(out, width=160, height=120, fps=FPS) as enc:
        for i, t in enumerate(times):
            enc.write(picture(i), pts=t)
    assert probe(out).frame_times == pytest.approx([i * FRAME for i in range(20)], abs=1e-3)


def test_a_damaged_sound_packet_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean = make_clip(tmp_path / "clean.mkv", frames=25, audio="aac")
    damaged = tmp_path / "damaged.mkv"
    with av.open(str(clean)) as src, av.open(str(damaged), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        sound_packets = 0
        for packet in src.demux():
            if packet.size == 0:
                continue  # a flush marker
            stream = streams[packet.stream.index]
            if packet.stream.type == "audio":
                sound_packets += 1
                if sound_packets in (10, 20):  # garbage where two packets were
                    bad = av.Packet(b"\xff" * packet.size)
                    bad.pts, bad.dts, bad.duration = packet.pts, packet.dts, packet.duration
                    bad.time_base = packet.time_base
                    packet = bad
            packet.stream = stream
            dst.mux(packet)
    out = tmp_path / "dream.webm"  # Opus: the sound is decoded and encoded again
    with (
        caplog.at_level(logging.WARNING),
        VideoEncoder(out, width=160, height=120, fps=FPS, audio_from=damaged) as enc,
    ):
        for frame, t in source_frames(damaged):
            enc.write(frame, t)
    found = probe(out)
    assert len(found.frame_times) == 25
    assert found.audio_codecs == ["opus"]
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=FRAME)
    warnings = [r.getMessage() for r in caplog.records if "damaged packet" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_a_sound_stream_without_a_decoder_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=10, audio="aac")
    strange = tmp_path / "strange.mkv"  # the sound's codec renamed to one nobody knows
    strange.write_bytes(clip.read_bytes().replace(b"A_AAC", b"A_ZZZ", 1))
    with av.open(str(strange)) as check:
        assert check.streams.audio[0].codec_context is None
    out = tmp_path / "dream.mp4"
    with (
        caplog.at_level(logging.WARNING),
        VideoEncoder(out, width=160, height=120, fps=FPS, audio_from=strange) as enc,
    ):
        for frame, t in source_frames(strange):
            enc.write(frame, t)
    found = probe(out)
    assert (len(found.frame_times), found.audio_codecs) == (10, [])
    messages = [r.getMessage() for r in caplog.records]
    assert f"{strange}: sound stream 1 has a codec this PyAV build cannot read" in messages[0]
