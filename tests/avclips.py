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
    pictures: Callable[[int, int, int], np.ndarray] = picture,
) -> Path:
    """Write a clip of ``frames`` frames and, unless ``audio`` is None, a sine tone in that
    codec lasting as long as the video. ``pictures(index, width, height)`` makes each frame."""
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
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures(i, width, height), format="bgr24")
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
