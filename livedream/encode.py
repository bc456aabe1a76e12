"""Video files written through PyAV (FFmpeg): pictures browsers play, with the input's sound.

``VideoEncoder`` writes ``(H, W, 3)`` uint8 BGR frames to one file at exactly the path given;
the container and codecs follow the extension (``FORMATS``), which may be given apart from the
path so that a hidden temporary name works too:

    with VideoEncoder(".out.mp4.partial", extension=".mp4", width=640, height=480, fps=25,
                      audio_from=Path("in.mp4")) as enc:
        for frame, pts in frames:      # pts: seconds on the input's clock, or None
            enc.write(frame, pts)

- .mp4 .m4v .mov .mkv: H.264 (libx264, preset veryfast, CRF ``quality``), yuv420p, BT.709;
  mp4/m4v/mov put their index in front (``+faststart``) so a browser plays while downloading.
- .webm: VP9 (libvpx-vp9, constant quality, realtime speed), sound in Opus.
- .avi: Motion JPEG at a fixed quantizer (AVI is constant-rate: timestamps snap to 1/fps).

Odd sizes lose their last column or row (H.264/VP9 4:2:0 need even sizes). Every sound stream
of ``audio_from`` is copied packet for packet where the container takes its codec (``copy_audio``
in ``FORMATS``), otherwise re-encoded (AAC, Opus or PCM), and cut where the video ends: to the
sample when re-encoded, at a packet boundary when copied (the packet that starts before the end
is kept: AAC 21 ms, Opus 20 ms, MP3 24 ms, AC-3 32 ms, FLAC up to ~100 ms at 48 kHz).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.audio
import av.container
import av.stream
import numpy as np
import numpy.typing as npt

from livedream.errors import OutputWriteError, SinkError

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]  # (H, W, 3) uint8 BGR

DEFAULT_QUALITY = 23  # x264's own default CRF: good quality at a modest size
MAX_QUALITY = 51  # x264's CRF range is 0 (lossless) .. 51 (worst)
TICKS = 90_000  # video clock, ticks per second: exact for 24, 25, 30, 50, 60 and 30000/1001 fps

# Sound codecs each container carries unchanged. mp4/m4v are meant for browsers, so they copy
# only what browsers decode there (AC-3 or DTS would leave Chrome silent: those get AAC).
_WEB_MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac"})
_MOV_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be"})
_MKV_AUDIO = frozenset(
    {"aac", "mp3", "mp2", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "dts", "truehd"}
    | {"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8"}
)
_WEBM_AUDIO = frozenset({"opus", "vorbis"})
_AVI_AUDIO = frozenset({"mp3", "mp2", "ac3", "aac", "pcm_s16le", "pcm_u8"})


@dataclass(frozen=True)
class ContainerFormat:
    """How one file extension is written."""

    muxer: str  # FFmpeg muxer name, passed explicitly so the file's own name does not matter
    video_codec: str
    pix_fmt: str
    audio_codec: str  # for sound that cannot be copied
    copy_audio: frozenset[str]  # sound codecs copied unchanged
    faststart: bool = False  # index (moov) before the data, for playback while downloading
    constant_rate: bool = False  # the container stores no timestamps, only a frame rate


FORMATS: dict[str, ContainerFormat] = {
    ".mp4": ContainerFormat("mp4", "libx264", "yuv420p", "aac", _WEB_MP4_AUDIO, faststart=True),
    ".m4v": ContainerFormat("mp4", "libx264", "yuv420p", "aac", _WEB_MP4_AUDIO, faststart=True),
    ".mov": ContainerFormat("mov", "libx264", "yuv420p", "aac", _MOV_AUDIO, faststart=True),
    ".mkv": ContainerFormat("matroska", "libx264", "yuv420p", "aac", _MKV_AUDIO),
    ".webm": ContainerFormat("webm", "libvpx-vp9", "yuv420p", "libopus", _WEBM_AUDIO),
    ".avi": ContainerFormat(
        "avi", "mjpeg", "yuvj420p", "pcm_s16le", _AVI_AUDIO, constant_rate=True
    ),
}
VIDEO_EXTENSIONS = tuple(FORMATS)


def encoder_options(codec: str, quality: int) -> dict[str, str]:
    """FFmpeg options for ``codec`` at ``quality`` (x264 CRF scale: 0 best .. 51 smallest)."""
    if codec == "libx264":
        return {"crf": str(quality), "preset": "veryfast"}
    if codec == "libvpx-vp9":
        # VP9's CRF runs 0..63; b=0 makes it constant quality; realtime + cpu-used 8 keeps it
        # about as fast as x264 veryfast (a few ms per 640x480 frame).
        crf = round(quality * 63 / MAX_QUALITY)
        return {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    if codec == "mjpeg":
        # Six CRF steps double x264's quantizer step; JPEG's qscale is linear in its step:
        # CRF 18 -> q 2 (near lossless), 23 -> 4, 30 -> 8, 42 and above -> 31.
        q = min(31, max(2, round(2 * 2 ** ((quality - 18) / 6))))
        return {"qmin": str(q), "qmax": str(q)}
    return {}


def _check_codec(name: str, path: Path) -> None:
    try:
        av.codec.Codec(name, "w")
    except (ValueError, av.FFmpegError):
        raise SinkError(
            f"cannot write {path}: this PyAV build has no {name!r} encoder; expected the "
            f"PyPI wheels of av (pip install --force-reinstall 'av>=14') or another extension "
            f"({' '.join(VIDEO_EXTENSIONS)})"
        ) from None


class VideoEncoder:
    """One video file, written by PyAV at exactly ``path``.

    ``write()`` and ``close()`` may be called from different threads; ``write()`` after
    ``close()`` is ignored. The file is created by the constructor; with no frame written,
    ``close()`` leaves a file with no frames (the caller deletes it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        quality: int = DEFAULT_QUALITY,
        audio_from: str | os.PathLike[str] | None = None,
        extension: str | None = None,
    ) -> None:
        """Open the file and its encoders.

        Args:
            path: the file to write (created or truncated).
            width, height: size of the frames ``write()`` takes; an odd size loses its last
                column / row in the file.
            fps: frame rate: the clock of frames written without ``pts``, the duration of the
                last frame, and AVI's fixed rate.
            quality: 0 (best, largest) .. 51 (smallest), x264's CRF scale; mapped for VP9/MJPEG.
            audio_from: a media file whose sound streams go into the output, cut to the video.
            extension: the extension that picks the format (default: ``path``'s own).

        Raises:
            SinkError: unknown extension, bad size/fps/quality, an encoder missing in this
                PyAV build, a file that cannot be created or sound that cannot be read.
        """
        self._path = Path(path)
        ext = (extension if extension is not None else self._path.suffix).lower()
        if ext and not ext.startswith("."):
            ext = "." + ext
        if ext not in FORMATS:
            raise SinkError(
                f"cannot write {self._path}: unknown video format {ext or '(no extension)'!r}; "
                f"expected one of {' '.join(VIDEO_EXTENSIONS)}"
            )
        if width < 2 or height < 2 or not fps > 0:
            raise SinkError(
                f"cannot write {self._path}: expected at least 2x2 pixels and fps above 0, got "
                f"{width}x{height} at {fps:g} fps"
            )
        if not 0 <= quality <= MAX_QUALITY:
            raise SinkError(
                f"cannot write {self._path}: quality must be 0 (best) .. {MAX_QUALITY} "
                f"(smallest), {DEFAULT_QUALITY} by default; got {quality}"
            )
        self._format = fmt = FORMATS[ext]
        _check_codec(fmt.video_codec, self._path)
        self._shape = (height, width, 3)
        self._size = (width - width % 2, height - height % 2)  # what the file stores
        if self._size != (width, height):
            logger.warning(
                "%s: odd frame size %dx%d; the file stores %dx%d (last column/row dropped)",
                self._path,
                width,
                height,
                *self._size,
            )
        self._fps = float(fps)
        rate = Fraction(fps).limit_denominator(1001)
        # AVI stores only a rate: its clock ticks once per frame. The others get a fine clock
        # so that a variable-frame-rate input keeps its timing.
        self._time_base = 1 / rate if fmt.constant_rate else Fraction(1, TICKS)
        self._frame_ticks = max(1, round(1 / (self._fps * self._time_base)))

        self._lock = threading.Lock()
        self._closed = False
        self._frames = 0
        self._last_ticks = -1
        self._warned_pts = False
        self._failure: str | None = None  # why a write failed; the file is then given up
        options = {"movflags": "+faststart"} if fmt.faststart else {}
        existed = self._path.exists()  # on a failed start, remove only a file made here
        try:
            self._out = av.open(str(self._path), "w", format=fmt.muxer, options=options)
        except (OSError, av.FFmpegError) as e:
            raise SinkError(f"cannot write {self._path}: {_reason(e)}") from None
        self._audio: _SoundCarrier | None = None
        try:
            self._video = self._add_video(rate, quality)
            if audio_from is not None:
                self._audio = _SoundCarrier(Path(audio_from), self._out, fmt)
            try:
                self._out.start_encoding()  # creates the file: a bad path fails here, not later
            except (OSError, av.FFmpegError) as e:
                raise SinkError(f"cannot write {self._path}: {_reason(e)}") from None
        except BaseException:
            if self._audio is not None:
                self._audio.close()
            with contextlib.suppress(OSError, av.FFmpegError):
                self._out.close()
            if not existed:
                self._path.unlink(missing_ok=True)
            raise
        logger.info(
            "writing %s (%dx%d, %.3g fps, %s, quality %d%s)",
            self._path,
            *self._size,
            fps,
            fmt.video_codec,
            quality,
            f", sound from {audio_from}" if self._audio else "",
        )

    def _add_video(self, rate: Fraction, quality: int) -> av.VideoStream:
        fmt = self._format
        stream = self._out.add_stream(
            fmt.video_codec, rate=rate, options=encoder_options(fmt.video_codec, quality)
        )
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = self._size
        stream.pix_fmt = fmt.pix_fmt
        stream.time_base = self._time_base
        stream.codec_context.time_base = self._time_base
        if fmt.pix_fmt == "yuv420p":
            # Frames are converted with BT.709 and say so: untagged video is BT.601 to some
            # players and BT.709 to others, and the colours shift between them.
            cc = stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = 1  # AVCOL_*_BT709
            cc.color_range = 1  # AVCOL_RANGE_MPEG (16..235)
        return stream

    @property
    def path(self) -> Path:
        """The file being written."""
        return self._path

    @property
    def format(self) -> ContainerFormat:
        """The container and codecs chosen from the extension."""
        return self._format

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def write(self, frame: Frame, pts: float | None = None) -> None:
        """Append one frame; any thread.

        Args:
            frame: ``(H, W, 3)`` uint8 BGR of the size given at construction.
            pts: when the frame is shown, in seconds on the input's clock (0 = the input's
                start, the clock ``audio_from``'s sound is cut by); None: frame index / fps.
                Timestamps must increase; one that does not is moved just after the last.

        Raises:
            ValueError: the frame has another shape or dtype.
            OutputWriteError: the file could not be written (disk full, folder gone); every
                later ``write()`` raises it again.
        """
        if frame.shape != self._shape or frame.dtype != np.uint8:
            raise ValueError(
                f"unexpected frame: {frame.shape} {frame.dtype} != {self._shape} uint8"
            )
        with self._lock:
            if self._closed:
                logger.debug("%s: frame after close() dropped", self._path)
                return
            if self._failure is not None:
                raise OutputWriteError(self._failure)
            seconds = self._frames / self._fps if pts is None else pts
            ticks = round(seconds / self._time_base)
            if ticks <= self._last_ticks:
                if not self._warned_pts:
                    logger.warning(
                        "%s: frame %d at %.6f s does not follow the last; moved after it "
                        "(warned once)",
                        self._path,
                        self._frames,
                        seconds,
                    )
                    self._warned_pts = True
                ticks = self._last_ticks + 1
            width, height = self._size
            picture = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[:height, :width]), format="bgr24"
            )
            if self._format.pix_fmt == "yuv420p":
                picture = picture.reformat(format="yuv420p", dst_colorspace="ITU709")
            else:
                picture = picture.reformat(format=self._format.pix_fmt)
            picture.pts = ticks
            picture.time_base = self._time_base
            picture.duration = self._frame_ticks
            try:
                self._out.mux(self._video.encode(picture))
                if self._audio is not None:
                    self._audio.pump(float(ticks * self._time_base))
            except (OSError, av.FFmpegError) as e:
                self._failure = f"cannot write {self._path}: {_reason(e)}; the file is incomplete"
                raise OutputWriteError(self._failure) from None
            self._last_ticks = ticks
            self._frames += 1

    def close(self) -> None:
        """Flush the encoders, cut the sound where the video ends and write the index; any
        thread, safe to call twice. After a ``write()`` that raised ``OutputWriteError`` it only
        lets go of the file, which stays incomplete, and raises nothing more.

        Raises:
            OutputWriteError: the file could not be finished (disk full, folder gone).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            error: BaseException | None = None
            try:
                if self._frames and self._failure is None:
                    self._out.mux(self._video.encode(None))
                    if self._audio is not None:
                        end = (self._last_ticks + self._frame_ticks) * self._time_base
                        self._audio.finish(float(end))
            except (OSError, av.FFmpegError) as e:
                error = e
            finally:
                if self._audio is not None:
                    self._audio.close()
                try:
                    self._out.close()
                except (OSError, av.FFmpegError) as e:
                    error = error or e
            if self._failure is not None:
                logger.debug("%s: closed after a failed write: %s", self._path, error)
                return
            if error is not None:
                raise OutputWriteError(
                    f"cannot finish {self._path}: {_reason(error)}; the file is incomplete"
                ) from None
            logger.info("wrote %s: %d frames", self._path, self._frames)

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return str(e.strerror)
    return str(e) or type(e).__name__


class _SoundCarrier:
    """The sound streams of one input, muxed into an output as its video advances.

    Times are seconds on the input's clock less its start time, the clock of ``write(pts=)``.
    """

    def __init__(self, source: Path, out: av.container.OutputContainer, fmt: ContainerFormat):
        try:
            self._in = av.open(str(source))
        except (OSError, av.FFmpegError) as e:
            raise SinkError(
                f"cannot read the sound of {source}: {_reason(e)}; expected a readable media "
                "file, or no sound"
            ) from None
        start = self._in.start_time  # microseconds, None when unknown
        self._origin = 0.0 if start is None else start / 1_000_000
        self._tracks: dict[int, _Copy | _Reencode] = {}
        try:
            for stream in self._in.streams.audio:
                track: _Copy | _Reencode
                # The codec's own name: the decoder's may differ (mp3 is decoded by "mp3float").
                codec = stream.codec_context.codec.canonical_name
                if codec in fmt.copy_audio:
                    track = _Copy(stream, out, self._origin)
                else:
                    _check_codec(fmt.audio_codec, Path(out.name))
                    track = _Reencode(stream, out, fmt.audio_codec, self._origin)
                self._tracks[stream.index] = track
                logger.info(
                    "%s: sound stream %d (%s) %s",
                    out.name,
                    stream.index,
                    codec,
                    "copied" if isinstance(track, _Copy) else f"re-encoded to {fmt.audio_codec}",
                )
        except BaseException:
            self._in.close()
            raise
        if not self._tracks:
            logger.info("%s has no sound", source)
        streams = [self._in.streams[i] for i in self._tracks]
        self._packets: Iterator[av.Packet[av.stream.Stream]] = iter(
            self._in.demux(streams) if streams else ()
        )
        self._pending: av.Packet[av.stream.Stream] | None = None

    def __bool__(self) -> bool:
        return bool(self._tracks)

    def pump(self, until: float) -> None:
        """Mux the sound before ``until`` seconds (the start of the newest frame)."""
        while (packet := self._next()) is not None:
            if self._time(packet) >= until:
                break  # kept as pending for the next call
            self._pending = None
            self._tracks[packet.stream.index].put(packet, until)
        for track in self._tracks.values():
            track.release(until)

    def finish(self, end: float) -> None:
        """Mux the sound up to ``end`` seconds (the video's end), drop the rest, flush."""
        done: set[int] = set()
        while len(done) < len(self._tracks) and (packet := self._next()) is not None:
            self._pending = None
            index = packet.stream.index
            if index in done:
                continue
            if self._time(packet) >= end:
                done.add(index)
                continue
            self._tracks[index].put(packet, end)
        for track in self._tracks.values():
            track.flush(end)

    def close(self) -> None:
        self._in.close()

    def _next(self) -> av.Packet[av.stream.Stream] | None:
        while self._pending is None:
            packet = next(self._packets, None)
            if packet is None:
                return None
            if packet.dts is not None or packet.pts is not None:  # not a flush marker
                self._pending = packet
        return self._pending

    def _time(self, packet: av.Packet[av.stream.Stream]) -> float:
        ts = packet.pts if packet.pts is not None else packet.dts
        assert ts is not None and packet.time_base is not None
        return float(ts * packet.time_base) - self._origin


class _Copy:
    """A sound stream copied packet for packet."""

    def __init__(
        self, stream: av.audio.AudioStream, out: av.container.OutputContainer, origin: float
    ):
        self._out = out
        self._stream = out.add_stream_from_template(stream)
        self._shift = round(origin / stream.time_base) if stream.time_base else 0

    def put(self, packet: av.Packet[av.stream.Stream], limit: float) -> None:
        # A packet is a few ms of sound (AAC: 21 ms at 48 kHz): one that starts before the
        # video's end is kept whole, as cutting it would mean re-encoding it.
        if packet.pts is not None:
            packet.pts -= self._shift
        if packet.dts is not None:
            packet.dts -= self._shift
        packet.stream = self._stream
        self._out.mux(packet)

    def release(self, limit: float) -> None:
        pass

    def flush(self, end: float) -> None:
        pass


class _Reencode:
    """A sound stream decoded, cut to the sample and encoded again."""

    def __init__(
        self,
        stream: av.audio.AudioStream,
        out: av.container.OutputContainer,
        codec: str,
        origin: float,
    ):
        self._out = out
        self._decoder = stream.codec_context
        self._origin = origin
        self._held: list[tuple[float, av.AudioFrame]] = []  # decoded, not yet encoded: (s, frame)
        rate = stream.codec_context.sample_rate or 48_000
        channels = stream.codec_context.channels
        supported = av.codec.Codec(codec, "w").audio_rates
        if supported and rate not in supported:
            rate = 48_000
        # By channel count, not the input's layout: an unordered "2 channels" stops the encoder.
        layout = {1: "mono", 6: "5.1"}.get(channels, "stereo")
        if codec == "libopus" and layout == "5.1":
            layout = "stereo"
        stream_out = out.add_stream(codec, rate=rate)
        assert isinstance(stream_out, av.audio.AudioStream)
        self._stream = stream_out
        cc = stream_out.codec_context
        cc.layout = layout
        cc.format = (av.codec.Codec(codec, "w").audio_formats or [av.AudioFormat("s16")])[0]
        cc.time_base = Fraction(1, rate)
        if not codec.startswith("pcm_"):
            cc.bit_rate = 64_000 * min(cc.channels, 6)
        self._resampler = av.AudioResampler(
            format=cc.format.name, layout=layout, rate=rate, frame_size=cc.frame_size or None
        )

    def put(self, packet: av.Packet[av.stream.Stream] | None, limit: float) -> None:
        for frame in self._decoder.decode(packet):
            if frame.pts is not None and frame.time_base is not None:
                start = float(frame.pts * frame.time_base) - self._origin
                self._held.append((start, frame))
        self.release(limit)

    def flush(self, end: float) -> None:
        self.put(None, end)
        self._held.clear()  # sound after the video's end
        for piece in self._resampler.resample(None):
            self._out.mux(self._stream.encode(piece))
        self._out.mux(self._stream.encode(None))

    def release(self, limit: float) -> None:
        """Encode the held sound before ``limit`` seconds, to the sample; keep the rest."""
        while self._held:
            start, frame = self._held[0]
            rate = frame.sample_rate
            cut = round((limit - start) * rate)
            if cut <= 0:
                return
            if cut < frame.samples:
                self._held[0] = (start + cut / rate, _samples(frame, cut, frame.samples))
                self._encode(start, _samples(frame, 0, cut))
                return
            self._held.pop(0)
            self._encode(start, frame)

    def _encode(self, start: float, frame: av.AudioFrame) -> None:
        frame.pts = round(start * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
        for piece in self._resampler.resample(frame):
            self._out.mux(self._stream.encode(piece))


def _samples(frame: av.AudioFrame, first: int, stop: int) -> av.AudioFrame:
    """Samples ``first`` up to ``stop`` of ``frame``."""
    data = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    step = 1 if frame.format.is_planar else frame.layout.nb_channels
    part = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, first * step : stop * step]),  # type: ignore[arg-type]
        format=frame.format.name,
        layout=frame.layout,
    )
    part.sample_rate = frame.sample_rate
    return part
