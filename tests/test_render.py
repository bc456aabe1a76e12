"""Rendered videos as a user gets them from the CLI: H.264 or VP9 with the input's sound, every
input frame (``--dream-every``, ``--realtime``), and a file played live starts dreamed."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import numpy as np
import pytest
from avclips import make_clip, picture, probe, source_frames
from conftest import FAST, LivedreamProcess
from helpers import difference, wait_for

from livedream.cli import main


def frame_difference(out: Path, src: Path) -> list[float]:
    """Mean |out - in| of each frame pair (0..255), in order."""
    outs = [frame for frame, _ in source_frames(out)]
    ins = [frame for frame, _ in source_frames(src)]
    assert len(outs) == len(ins)
    return [difference(a, b) for a, b in zip(outs, ins, strict=True)]


@pytest.fixture(scope="module")
def sound_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 25 fps, 160x120, with a sine tone as long as the video."""
    return make_clip(tmp_path_factory.mktemp("clips") / "tone.mp4", frames=50)


def test_render_is_h264_with_the_inputs_frames_and_sound(sound_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "dream.mp4"
    assert main(["-i", str(sound_clip), "-o", str(out), *FAST]) == 0
    found, given = probe(out), probe(sound_clip)
    assert (found.video_codec, found.pix_fmt) == ("h264", "yuv420p")
    assert (found.width, found.height) == (160, 120)
    assert len(found.frame_times) == 50
    assert found.frame_times == pytest.approx(given.frame_times, abs=1e-3)
    assert found.audio_codecs == ["aac"]
    assert found.audio_ends[0] == pytest.approx(given.audio_ends[0], abs=1 / 25)
    assert min(frame_difference(out, sound_clip)) > 1.0  # every frame dreamed


def test_no_sound_in_gives_no_sound_out(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "silent.mp4", frames=10, audio=None)
    out = tmp_path / "dream.mp4"
    assert main(["-i", str(clip), "-o", str(out), *FAST]) == 0
    found = probe(out)
    assert len(found.frame_times) == 10 and found.audio_codecs == []


def test_webm_is_vp9_with_its_sound_in_opus(sound_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "dream.webm"
    assert main(["-i", str(sound_clip), "-o", str(out), *FAST]) == 0
    found = probe(out)
    assert found.video_codec == "vp9" and found.audio_codecs == ["opus"]
    assert len(found.frame_times) == 50


def test_real_clip_keeps_its_sound(media_dir: Path, tmp_path: Path) -> None:
    clip = media_dir / "bigbuckbunny.mp4"
    out = tmp_path / "bunny.mp4"
    args = ["-i", str(clip), "-o", str(out), *FAST, "--dream-every", "4"]
    assert main(args) == 0
    found, given = probe(out), probe(clip)
    assert len(found.frame_times) == len(given.frame_times) == 132
    assert found.audio_codecs == given.audio_codecs == ["aac"]
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=0.05)


def test_dream_every_3_renders_every_frame_each_dreamed(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=31, audio=None)
    out = tmp_path / "dream.mp4"
    assert main(["-i", str(clip), "-o", str(out), *FAST, "--dream-every", "3"]) == 0
    differences = frame_difference(out, clip)
    assert len(differences) == 31  # exactly the input's frame count
    assert min(differences) > 1.0  # the frames between keyframes carry the dream too


def test_realtime_plays_the_file_as_a_camera_and_records_every_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=40, fps=20)
    out = tmp_path / "live.mp4"
    args = ["-i", str(clip), "-o", str(out), *FAST, "--realtime"]
    assert main(args) == 0
    found, given = probe(out), probe(clip)
    assert len(found.frame_times) == 40  # every input frame, at the input's timing
    assert found.frame_times == pytest.approx(given.frame_times, abs=1e-3)
    assert (found.width, found.height) == (160, 120)
    assert found.audio_codecs == ["aac"]
    # A file can wait for the dream: its playback starts dreamed, and stays so.
    assert min(frame_difference(out, clip)) > 1.0


def test_interrupted_render_keeps_its_sound_up_to_its_last_frame(tmp_path: Path) -> None:
    # Noise: every frame encodes big, so the hidden file grows as soon as frames are written.
    clip = make_clip(tmp_path / "long.mp4", frames=200, noise=True)
    out = tmp_path / "dream.mp4"
    render = LivedreamProcess(["-i", str(clip), "-o", str(out), *FAST])
    try:
        # Some frames dreamed: the encoder flushed its first ones to the hidden file.
        # The run's own hidden file: .dream.mp4.<random>.partial.mp4 (livedream.sinks.files).
        def written() -> bool:
            for temp in tmp_path.glob(".dream.mp4.*.partial.mp4"):
                with contextlib.suppress(FileNotFoundError):  # renamed once the render ends
                    return temp.stat().st_size > 1000
            return False

        wait_for(written, 300, "frames written")
        render.proc.send_signal(signal.SIGINT)
        assert render.wait(20) == 130
    finally:
        render.close()
    found = probe(out)
    assert 0 < len(found.frame_times) < 200
    assert found.audio_codecs == ["aac"]
    assert found.audio_ends[0] == pytest.approx(found.video_end, abs=0.05)


def test_a_picture_with_an_even_size_survives(tmp_path: Path) -> None:
    """The test clips' pictures decode back close to what was written (sanity of the probe)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=None)
    first, _ = source_frames(clip)[0]
    assert np.abs(first.astype(int) - picture(0)).mean() < 6


def test_demo_is_a_short_dreamed_h264_clip_and_says_what_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from livedream.args import SAMPLE_CLIP

    monkeypatch.chdir(tmp_path)
    assert main(["--demo", "--max-frames", "6"]) == 0  # the demo's own dream settings
    out = tmp_path / "dream.mp4"
    found = probe(out)
    assert found.video_codec == "h264" and len(found.frame_times) == 6
    assert (found.width, found.height) == (640, 272)
    outs = [frame for frame, _ in source_frames(out)]
    ins = [frame for frame, _ in source_frames(SAMPLE_CLIP)][:6]
    assert np.mean([difference(a, b) for a, b in zip(outs, ins, strict=True)]) > 3
    assert "livedream --virtual-cam" in capsys.readouterr().err
