"""Video files written through PyAV (FFmpeg): pictures browsers play, with the input's sound.

``VideoEncoder`` writes ``(H, W, 3)`` uint8 BGR frames to one file at exactly the path given;
the container and codecs follow the extension (``FORMATS``), which may be given apart from the
path so that a hidden temporary name works too:

    with VideoEncoder(".out.mp4.partial", extension=".mp4", width=640, height=480, fps=25,
                      audio_from=Path("in.mp4")) as enc:
        for frame, pts in frames:      # pts: seconds on the input's clock, or None
            enc.write(frame, pts)

- .mp4 .m4v .mov .mkv: H.264 (libx264, preset veryfast, CRF ``quality``), yuv420p, BT.709.
  mp4/m4v/mov are written fragmented (an index per fragment, a fragment per keyframe or
  0.25 s), so the file plays up to its last fragment however writing ends; the file sink
  then copies a finished one into a plain file with its index in front, which a browser plays
  while downloading.
- .webm: VP9 (libvpx-vp9, constant quality, realtime speed), sound in Opus. mkv and webm
  play as they grow; their clusters are kept to half a second.
- .avi: Motion JPEG at a fixed quantizer (AVI is constant-rate: timestamps snap to 1/fps).

A keyframe comes at least every second (the GOP), so a file cut short loses at most about
its last second. Timestamps that jump (files joined with ``cat``, a camera's clock reset) are
made to follow on: a frame more than one frame interval back, or over ``JUMP_AHEAD`` seconds
ahead, comes one frame interval after the last, and the frames after it keep their spacing.

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
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np

from livedream.errors import OutputWriteError, SinkError
from livedream.media import Frame
from livedream.soundtrack import JUMP_AHEAD, Soundtrack, av_reason, check_encoder

logger = logging.getLogger(__name__)


DEFAULT_QUALITY = 23  # x264's own default CRF: good quality at a modest size
MAX_QUALITY = 51  # x264's CRF range is 0 (lossless) .. 51 (worst)
TICKS = 90_000  # video clock, ticks per second: exact for 24, 25, 30, 50, 60 and 30000/1001 fps
# Fragmented MP4 while writing: a fragment per keyframe or 0.25 s, each with its index. The
# first index waits for the first fragment (delay_moov) so that it knows the B-frame delay
# (an edit list): without it every frame would show two frames late.
GROWING_MP4 = "frag_keyframe+delay_moov+default_base_moof"

# Sound codecs each container carries unchanged. mp4/m4v are meant for browsers, so they copy
# only what browsers decode there (AC-3 or DTS would leave Chrome silent: those get AAC).
_WEB_MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac"})
_MOV_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be"})
_MKV_AUDIO = frozenset(
    {"aac", "mp3", "mp2", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "dts", "truehd"}
    | {"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8"}
)
_WEBM_AUDIO = frozenset({"opus", "vorbis"})
_FRAGMENTED = {"movflags": GROWING_MP4, "frag_duration": "250000"}  # and every 0.25 s (us)
_SHORT_CLUSTERS = {"cluster_time_limit": "500"}  # ms: a cluster is written when complete
# AVI keeps no time per sound packet, only their order: compressed sound that does not start
# on its packet grid (video starting mid-packet, joined files) cannot be copied; PCM can.
_AVI_AUDIO = frozenset({"pcm_s16le", "pcm_u8"})


@dataclass(frozen=True)
class ContainerFormat:
    """How one file extension is written."""

    muxer: str  # FFmpeg muxer name, passed explicitly so the file's own name does not matter
    video_codec: str
    pix_fmt: str
    audio_codec: str  # for sound that cannot be copied
    copy_audio: frozenset[str]  # sound codecs copied unchanged
    faststart: bool = False  # written fragmented, then copied with its index (moov) in front
    growing: dict[str, str] = field(default_factory=dict)  # muxer options while writing
    constant_rate: bool = False  # the container stores no timestamps, only a frame rate


FORMATS: dict[str, ContainerFormat] = {
    ".mp4": ContainerFormat(
        "mp4", "libx264", "yuv420p", "aac", _WEB_MP4_AUDIO, faststart=True, growing=_FRAGMENTED
    ),
    ".m4v": ContainerFormat(
        "mp4", "libx264", "yuv420p", "aac", _WEB_MP4_AUDIO, faststart=True, growing=_FRAGMENTED
    ),
    ".mov": ContainerFormat(
        "mov", "libx264", "yuv420p", "aac", _MOV_AUDIO, faststart=True, growing=_FRAGMENTED
    ),
    ".mkv": ContainerFormat(
        "matroska", "libx264", "yuv420p", "aac", _MKV_AUDIO, growing=_SHORT_CLUSTERS
    ),
    ".webm": ContainerFormat(
        "webm", "libvpx-vp9", "yuv420p", "libopus", _WEBM_AUDIO, growing=_SHORT_CLUSTERS
    ),
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
        # about as fast as x264 veryfast (a few ms per 640x480 frame). No lookahead: frames
        # held in the encoder would be lost with a killed run (libvpx holds 25 by default).
        crf = round(quality * 63 / MAX_QUALITY)
        return {
            **{"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
            "lag-in-frames": "0",
        }
    if codec == "mjpeg":
        # Six CRF steps double x264's quantizer step; JPEG's qscale is linear in its step:
        # CRF 18 -> q 2 (near lossless), 23 -> 4, 30 -> 8, 42 and above -> 31.
        q = min(31, max(2, round(2 * 2 ** ((quality - 18) / 6))))
        return {"qmin": str(q), "qmax": str(q)}
    return {}


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
        file: BinaryIO | None = None,
        keep_gaps: bool = False,
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
            file: an open binary file to write instead of opening ``path`` (which then only
                names it in messages); the caller closes it after ``close()``.
            keep_gaps: keep a gap between two frames however long (a real-time recording's
                pause), rather than take it for a jump of the input's clock.

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
        check_encoder(fmt.video_codec, self._path)
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
        self._shift = 0  # ticks added to the input's clock since its jumps
        self._jump_ticks = round(JUMP_AHEAD / self._time_base) + self._frame_ticks
        if keep_gaps:
            self._jump_ticks = 2**62
        self._warned_pts = False
        self._failure: str | None = None  # why a write failed; the file is then given up
        # Each packet leaves FFmpeg's buffer at once: a fragment (mp4) or cluster (mkv, webm)
        # is written whole, so what is on disk plays up to its end whenever the run stops.
        options = {"flush_packets": "1", **fmt.growing}
        existed = file is not None or self._path.exists()  # on a failed start: remove only ours
        try:
            where = file if file is not None else str(self._path)
            self._out = av.open(where, "w", format=fmt.muxer, options=options)
        except (OSError, av.FFmpegError) as e:
            raise SinkError(f"cannot write {self._path}: {av_reason(e)}") from None
        self._audio: Soundtrack | None = None
        try:
            self._video = self._add_video(rate, quality)
            if audio_from is not None:
                self._audio = Soundtrack(
                    Path(audio_from),
                    self._out,
                    copy=fmt.copy_audio,
                    codec=fmt.audio_codec,
                    name=self._path,
                )
            try:
                self._out.start_encoding()  # creates the file: a bad path fails here, not later
            except (OSError, av.FFmpegError) as e:
                raise SinkError(f"cannot write {self._path}: {av_reason(e)}") from None
        except BaseException:
            if self._audio is not None:
                self._audio.close()
            with contextlib.suppress(OSError, av.FFmpegError):
                self._out.close()
            if not existed:
                self._path.unlink(missing_ok=True)
            raise
        # The sink that owns this (hidden) file says "writing"/"wrote" with the name asked for.
        logger.debug(
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
        stream.codec_context.gop_size = max(1, int(self._fps))  # a keyframe every second
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
    def has_sound(self) -> bool:
        """True when the input's sound goes into the file (``audio_from`` has a sound stream)."""
        return bool(self._audio)

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    @property
    def failed(self) -> bool:
        """True once a ``write()`` failed: the file is incomplete and must not be used."""
        return self._failure is not None

    def write(self, frame: Frame, pts: float | None = None) -> None:
        """Append one frame; any thread.

        Args:
            frame: ``(H, W, 3)`` uint8 BGR of the size given at construction.
            pts: when the frame is shown, in seconds on the input's clock (0 = the input's
                video's start, the clock ``audio_from``'s sound follows); None: frame index /
                fps. A timestamp at most one frame interval back is moved just after the last;
                a jump further back or over ``JUMP_AHEAD`` ahead shifts the clock from there on
                so that this frame comes one frame interval after the last (warned once).

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
            ticks = self._follow(round(seconds / self._time_base) + self._shift, seconds)
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
                self._failure = f"cannot write {self._path}: {av_reason(e)}; the file is incomplete"
                raise OutputWriteError(self._failure) from None
            self._last_ticks = ticks
            self._frames += 1

    def _follow(self, ticks: int, seconds: float) -> int:
        """The time of a frame meant for ``ticks`` (the shifted input clock), after the last."""
        last = self._last_ticks
        if last < 0 or last < ticks <= last + self._jump_ticks:
            return ticks
        if last - self._frame_ticks < ticks <= last:
            return last + 1  # a timestamp repeated or a hair back: no jump
        before = float((last - self._shift) * self._time_base)  # the last frame's input time
        follow = last + self._frame_ticks
        self._shift += follow - ticks
        if self._audio is not None:
            self._audio.jumped(float(self._shift * self._time_base))
        if not self._warned_pts:
            logger.warning(
                "%s: the input's clock jumps from %.3f s to %.3f s at frame %d (files joined?); "
                "the frames from there follow on one frame later (warned once)",
                self._path,
                before,
                seconds,
                self._frames,
            )
            self._warned_pts = True
        return follow

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
                    f"cannot finish {self._path}: {av_reason(error)}; the file is incomplete"
                ) from None
            logger.debug("wrote %s: %d frames", self._path, self._frames)

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
