"""The sound of an input file carried into an output file beside its video (PyAV).

``Soundtrack`` follows the video as it is written: ``pump(t)`` muxes the sound before ``t``
seconds, ``finish(end)`` the rest up to the video's end. A stream whose codec the container
takes is copied packet for packet (cut at a packet boundary), any other is decoded, cut to the
sample and re-encoded. Used by ``livedream.encode``.

Sound keeps its place against the picture: its clock starts where the input's video starts
(the clock of ``VideoEncoder.write(pts=)``), so sound before the first frame is dropped, and
where the input's clock jumps (files joined) the sound follows the video's jump. A damaged
sound packet is skipped and a sound stream with no decoder is left out, each with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.audio
import av.container
import av.stream
import numpy as np

from livedream.errors import SinkError

logger = logging.getLogger(__name__)

JUMP_AHEAD = 1.0  # seconds: a longer gap in a stream's timestamps is a jump of the input's clock
JUMP_BACK = 0.05  # seconds: a stream's timestamps going back further is a jump
EARLY = -1e-6  # seconds: sound that starts before this (before the first frame) is dropped


def check_encoder(name: str, path: Path) -> None:
    """Raise ``SinkError`` unless this PyAV build can encode ``name`` (for ``path``)."""
    try:
        av.codec.Codec(name, "w")
    except (ValueError, av.FFmpegError):
        raise SinkError(
            f"cannot write {path}: this PyAV build has no {name!r} encoder; expected the "
            f"PyPI wheels of av (pip install --force-reinstall 'av>=18.1') or another extension"
        ) from None


def av_reason(e: BaseException) -> str:
    """The short reason of an OSError or FFmpeg error, for a one-line message."""
    if isinstance(e, OSError) and e.strerror:
        return str(e.strerror)
    return str(e) or type(e).__name__


class Soundtrack:
    """The sound streams of one input, muxed into an output as its video advances.

    Times are seconds on the input's clock less its video's start time, the clock of
    ``write(pts=)``, plus the shift of each clock jump the video made (``jumped()``).
    """

    def __init__(
        self,
        source: Path,
        out: av.container.OutputContainer,
        *,
        copy: frozenset[str],
        codec: str,
        name: Path | None = None,
    ) -> None:
        """Open ``source`` and add one output stream per sound stream to ``out``.

        Args:
            copy: codecs ``out`` takes unchanged; any other sound is re-encoded to ``codec``.
            name: the output file, for messages (default: ``out``'s own name).

        Raises:
            SinkError: ``source`` cannot be read, or ``codec`` is missing in this PyAV build.
        """
        try:
            self._in = av.open(str(source))
        except (OSError, av.FFmpegError) as e:
            raise SinkError(
                f"cannot read the sound of {source}: {av_reason(e)}; expected a readable media "
                "file, or no sound"
            ) from None
        target = name if name is not None else Path(out.name)
        self._origin = _video_start(self._in)
        self._tracks: dict[int, _Copy | _Reencode] = {}
        try:
            for stream in self._in.streams.audio:
                track: _Copy | _Reencode
                if stream.codec_context is None:
                    logger.warning(
                        "%s: sound stream %d has a codec this PyAV build cannot read; "
                        "left out of %s",
                        source,
                        stream.index,
                        target,
                    )
                    continue
                # The codec's own name: the decoder's may differ (mp3 is decoded by "mp3float").
                kind = stream.codec_context.codec.canonical_name
                if kind in copy and not _needs_header(stream, out):
                    track = _Copy(stream, out)
                else:
                    check_encoder(codec, target)
                    track = _Reencode(stream, out, codec)
                self._tracks[stream.index] = track
                logger.info(
                    "%s: sound stream %d (%s) %s",
                    target,
                    stream.index,
                    kind,
                    "copied" if isinstance(track, _Copy) else f"re-encoded to {codec}",
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
        self._pending_at = (0.0, 0)  # the pending packet's (input time, jumps before it)
        self._shifts = [0.0]  # seconds added to the input's clock after each video jump
        self._last: dict[int, float] = {}  # each stream's newest input time
        self._jumps: dict[int, int] = {}  # each stream's clock jumps so far

    def __bool__(self) -> bool:
        return bool(self._tracks)

    def jumped(self, shift: float) -> None:
        """The video's clock jumped: from its next jump on, the sound's clock is shifted by
        ``shift`` seconds (in all, since the start)."""
        self._shifts.append(shift)

    def pump(self, until: float) -> None:
        """Mux the sound before ``until`` seconds (the start of the newest frame)."""
        while (packet := self._next()) is not None:
            at = self._time()
            if at >= until:
                break  # kept as pending for the next call
            self._pending = None
            self._tracks[packet.stream.index].put(packet, until, at)
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
            at = self._time()
            if at >= end:
                done.add(index)
                continue
            self._tracks[index].put(packet, end, at)
        for track in self._tracks.values():
            track.flush(end)

    def close(self) -> None:
        self._in.close()

    def _next(self) -> av.Packet[av.stream.Stream] | None:
        while self._pending is None:
            try:
                packet = next(self._packets, None)
            except av.FFmpegError as e:
                logger.warning(
                    "%s: reading the sound stopped (%s); the rest is silent",
                    self._in.name,
                    av_reason(e),
                )
                self._packets = iter(())
                return None
            if packet is None:
                return None
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.time_base is None:
                continue  # a flush marker
            self._pending = packet
            index = packet.stream.index
            seconds = float(ts * packet.time_base) - self._origin
            last = self._last.get(index)
            if last is not None and not last - JUMP_BACK <= seconds <= last + JUMP_AHEAD:
                self._jumps[index] = self._jumps.get(index, 0) + 1
            self._last[index] = seconds
            self._pending_at = (seconds, self._jumps.get(index, 0))
        return self._pending

    def _time(self) -> float:
        """The pending packet's time in the output: after a jump the video has not made yet,
        never (it waits, and is dropped at the end)."""
        seconds, jumps = self._pending_at
        return seconds + self._shifts[jumps] if jumps < len(self._shifts) else float("inf")


class _Copy:
    """A sound stream copied packet for packet."""

    def __init__(self, stream: av.audio.AudioStream, out: av.container.OutputContainer):
        self._out = out
        self._stream = out.add_stream_from_template(stream)
        self._last_dts: int | None = None  # the newest packet muxed, in the stream's time base
        # MP4 and MOV take sound that starts a little before the picture (an edit list): the
        # packet under the first frame is kept there, so AAC's priming survives. Elsewhere a
        # negative time after the first frame is refused, and the packet is dropped.
        self._lead_in = out.format.name in ("mp4", "mov")

    def put(self, packet: av.Packet[av.stream.Stream], limit: float, at: float) -> None:
        # A packet is a few ms of sound (AAC: 21 ms at 48 kHz), kept whole, as cutting it would
        # mean re-encoding it: one that starts before the video's end is kept, and one before
        # the first frame (or, after a jump, one that does not follow the last) is dropped.
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            return
        lead_in = float((packet.duration or 0) * packet.time_base) if self._lead_in else 0.0
        if at + lead_in < EARLY:
            return
        shift = round(at / packet.time_base) - ts
        dts = (packet.dts if packet.dts is not None else ts) + shift
        if self._last_dts is not None and dts <= self._last_dts:
            return
        self._last_dts = dts
        if packet.pts is not None:
            packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
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
    ):
        self._out = out
        self._decoder = stream.codec_context
        self._name = f"{stream.container.name}: sound stream {stream.index}"  # the input's
        self._warned = False
        self._next = EARLY  # output seconds: sound before this would go back in time
        self._shift = 0.0  # input seconds -> output seconds, as of the newest packet
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

    def put(self, packet: av.Packet[av.stream.Stream] | None, limit: float, at: float) -> None:
        """Decode ``packet``, which starts at ``at`` output seconds; encode what is due."""
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError as e:
            if not self._warned:
                logger.warning(
                    "%s: a damaged packet at %.3f s was skipped (%s; warned once)",
                    self._name,
                    at,
                    av_reason(e),
                )
                self._warned = True
            frames = []
        if packet is not None and packet.pts is not None and packet.time_base is not None:
            shift = at - float(packet.pts * packet.time_base)  # input -> output seconds
            self._shift = shift
        for frame in frames:
            if frame.pts is not None and frame.time_base is not None:
                start = float(frame.pts * frame.time_base) + self._shift
                self._held.append((start, frame))
        self.release(limit)

    def flush(self, end: float) -> None:
        self.put(None, end, end)
        self._held.clear()  # sound after the video's end
        for piece in self._resampler.resample(None):
            self._out.mux(self._stream.encode(piece))
        self._out.mux(self._stream.encode(None))

    def release(self, limit: float) -> None:
        """Encode the held sound before ``limit`` seconds, to the sample; keep the rest."""
        while self._held:
            start, frame = self._held[0]
            rate = frame.sample_rate
            if start < self._next:  # before the first frame, or back in time after a jump
                skip = round((self._next - start) * rate)
                if skip >= frame.samples:
                    self._held.pop(0)
                    continue
                if skip > 0:
                    start, frame = start + skip / rate, _samples(frame, skip, frame.samples)
                    self._held[0] = (start, frame)
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
        self._next = start + frame.samples / frame.sample_rate
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


def _video_start(media: av.container.InputContainer) -> float:
    """Where the input's first video stream starts, in seconds on the container's clock: time
    0 of ``write(pts=)`` (OpenCV counts a frame's time from there). Without video, the
    container's own start."""
    for stream in media.streams.video:
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
        break
    start = media.start_time  # microseconds, None when unknown
    return 0.0 if start is None else start / 1_000_000


def _needs_header(stream: av.audio.AudioStream, out: av.container.OutputContainer) -> bool:
    """True for AAC without its header (ADTS, as in .ts files) going into an MP4/MOV: a
    fragmented MP4 cannot take it copied, so it is re-encoded."""
    return (
        stream.codec_context.codec.canonical_name == "aac"
        and not stream.codec_context.extradata
        and out.format.name in ("mp4", "mov")
    )
