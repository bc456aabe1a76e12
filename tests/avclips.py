"""Small clips made with PyAV for the encoder tests, and what a player would find in a file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

TONE_HZ = 440.0


def picture(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 BGR frame that changes with ``index``: a moving gradient."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (x * 2 + index * 8) % 256
    frame[..., 1] = (y * 2 + index * 4) % 256
    frame[..., 2] = ((x + y) + index * 16) % 256
    return frame


def make_clip(
    path: Path,
    *,
    frames: int,
    fps: int = 25,
    size: tuple[int, int] = (160, 120),
    audio: str | None = "aac",
    rate: int = 48_000,
    noise: bool = False,
    pictures: Callable[[int, int, int], np.ndarray] = picture,
) -> Path:
    """Write a clip of ``frames`` frames and, unless ``audio`` is None, a sine tone in that
    codec lasting as long as the video. ``pictures(index, width, height)`` makes each frame;
    ``noise``: fresh noise in every frame instead, so each frame encodes big (a file written
    from it grows with every frame)."""
    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = out.add_stream(audio, rate=rate)
            sound.codec_context.layout = "stereo"
            fmt = (av.codec.Codec(audio, "w").audio_formats or [av.AudioFormat("s16")])[0]
            sound.codec_context.format = fmt
            samples = frames * rate // fps
            t = np.arange(samples) / rate
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
            resampler = av.AudioResampler(
                format=fmt,
                layout="stereo",
                rate=rate,
                frame_size=sound.codec_context.frame_size or 1024,
            )
            whole = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]), format="fltp", layout="stereo"
            )
            whole.sample_rate, whole.pts, whole.time_base = rate, 0, Fraction(1, rate)
            for piece in [*resampler.resample(whole), *resampler.resample(None)]:
                out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
        rng = np.random.default_rng(0)
        for i in range(frames):
            image = (
                rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                if noise
                else pictures(i, width, height)
            )
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            out.mux(video.encode(frame.reformat(format="yuv420p")))
        out.mux(video.encode(None))
    return path


def source_frames(path: Path) -> list[tuple[np.ndarray, float]]:
    """Every video frame of ``path`` as BGR with its time in seconds, as a source reads them."""
    with av.open(str(path)) as clip:
        return [
            (frame.to_ndarray(format="bgr24"), float(frame.time or 0.0))
            for frame in clip.decode(video=0)
        ]


@dataclass
class Probe:
    """What a player finds in a file."""

    format: str
    video_codec: str
    width: int
    height: int
    pix_fmt: str
    average_rate: Fraction | None
    frame_times: list[float]  # seconds, every decoded frame
    audio_codecs: list[str]
    audio_ends: list[float]  # seconds: where each sound stream's last packet ends
    audio_payloads: list[list[bytes]]  # each sound stream's packets, in order

    @property
    def video_end(self) -> float:
        """Where the last frame ends, at the file's frame rate."""
        rate = float(self.average_rate) if self.average_rate else 25.0
        return self.frame_times[-1] + 1 / rate


def probe(path: Path) -> Probe:
    """Decode ``path``'s video and demux its sound."""
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        times = [float(frame.time or 0.0) for frame in clip.decode(video)]
        probe = Probe(
            format=clip.format.name,
            video_codec=video.codec_context.name,
            width=video.codec_context.width,
            height=video.codec_context.height,
            pix_fmt=video.codec_context.pix_fmt or "",
            average_rate=video.average_rate,
            frame_times=times,
            audio_codecs=[s.codec_context.codec.canonical_name for s in clip.streams.audio],
            audio_ends=[0.0] * len(clip.streams.audio),
            audio_payloads=[[] for _ in clip.streams.audio],
        )
        if clip.streams.audio:
            clip.seek(0)
            positions = {s.index: i for i, s in enumerate(clip.streams.audio)}
            for packet in clip.demux(*clip.streams.audio):
                if packet.pts is None or packet.time_base is None:
                    continue
                i = positions[packet.stream.index]
                end = (packet.pts + (packet.duration or 0)) * packet.time_base
                probe.audio_ends[i] = max(probe.audio_ends[i], float(end))
                probe.audio_payloads[i].append(bytes(packet))
    return probe


def audio_payloads(path: Path) -> list[bytes]:
    """The first sound stream's packets of ``path``, in order."""
    with av.open(str(path)) as clip:
        return [bytes(p) for p in clip.demux(clip.streams.audio[0]) if p.size]


def top_level_boxes(path: Path) -> list[str]:
    """The names of an MP4/MOV file's top-level boxes, in file order (moov before mdat is
    what lets a browser start playing while downloading)."""
    names = []
    data = path.read_bytes()
    at = 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        names.append(data[at + 4 : at + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        if size < 8:
            break
        at += size
    return names


def make_flash_clip(
    path: Path, *, video_start: float, flash_at: float, seconds: float = 2.0, fps: int = 25
) -> Path:
    """A clip whose sound starts at 0 and whose video starts ``video_start`` seconds later;
    at input time ``flash_at`` one frame is white and the sound clicks (a 10 ms burst): the two
    must stay together. Dark frames and silence elsewhere. AAC sound, H.264 video; the
    container follows ``path``'s extension."""
    rate = 48_000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = Fraction(1, 1000)
        sound = out.add_stream("aac", rate=rate)
        sound.codec_context.layout = "mono"
        samples = np.zeros(int(seconds * rate), np.float32)
        click = int(flash_at * rate)
        samples[click : click + rate // 100] = 0.8
        whole = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        whole.sample_rate, whole.pts, whole.time_base = rate, 0, Fraction(1, rate)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate, frame_size=1024)
        for piece in [*resampler.resample(whole), *resampler.resample(None)]:
            out.mux(sound.encode(piece))
        out.mux(sound.encode(None))
        flash = round((flash_at - video_start) * fps)
        for i in range(round((seconds - video_start) * fps)):
            level = 255 if i == flash else 16
            picture = np.full((48, 64, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
            frame.pts = round((video_start + i / fps) * 1000)
            frame.time_base = Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def flash_times(path: Path) -> list[float]:
    """When ``path``'s white frames are shown, in seconds from the file's start."""
    with av.open(str(path)) as clip:
        start = clip.start_time / 1_000_000 if clip.start_time is not None else 0.0
        return [
            float(frame.time or 0.0) - start
            for frame in clip.decode(video=0)
            if frame.to_ndarray(format="gray").mean() > 128
        ]


def click_times(path: Path) -> list[float]:
    """When ``path``'s sound clicks (a loud onset after 0.1 s or more of quiet), in seconds
    from the file's start."""
    onsets: list[float] = []
    last_loud = -1.0
    with av.open(str(path)) as clip:
        start = clip.start_time / 1_000_000 if clip.start_time is not None else 0.0
        for frame in clip.decode(audio=0):
            begin = float(frame.time or 0.0) - start
            for i in np.flatnonzero(np.abs(frame.to_ndarray()).max(axis=0) > 0.4):
                at = begin + i / frame.sample_rate
                if at - last_loud > 0.1:
                    onsets.append(at)
                last_loud = at
    return onsets


def playable_frame_times(path: Path) -> list[float]:
    """The times of ``path``'s frames that decode, up to the first damage (a file cut short
    ends in a broken packet): what a player shows before it stops."""
    times: list[float] = []
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        try:
            for packet in clip.demux(video):
                times.extend(float(frame.time or 0.0) for frame in video.decode(packet))
        except av.FFmpegError:
            pass
    return times


def texture(seed: int, width: int, height: int, low: int, high: int) -> np.ndarray:
    """A smooth random texture twice the frame's size, grey levels in ``low``..``high``."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2)
    return cv2.normalize(blurred, None, low, high, cv2.NORM_MINMAX)  # type: ignore[no-any-return]


def two_shots(cut: int) -> Callable[[int, int, int], np.ndarray]:
    """``pictures`` for ``make_clip``: a dark texture panning 1 px a frame, then from frame
    ``cut`` on a bright one (a scene cut the compositor's test finds)."""
    scenes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def make(index: int, width: int, height: int) -> np.ndarray:
        if (width, height) not in scenes:
            scenes[width, height] = (
                texture(1, width, height, 0, 110),
                texture(2, width, height, 145, 255),
            )
        dark, bright = scenes[width, height]
        scene, x = (dark, index) if index < cut else (bright, index - cut)
        return np.ascontiguousarray(scene[5 : 5 + height, x : x + width])

    return make
