"""Soak run: the live pipeline on a paced synthetic camera for many frames; memory and threads.

    python scripts/soak.py                                # 10,000 frames at 30 fps (~6 min)
    python scripts/soak.py --frames 600 --dream-size 160x120 --layers block3_conv3

The synthetic camera (``SyntheticSource``) delivers ``--frames`` frames at ``--fps``; the live
pipeline dreams the newest one whenever the dream is free (the rest are dropped, as with a real
webcam), with the preview off and dreamed frames going into a ``NullSink``. So the run lasts
about frames / fps seconds of wall time whatever the dream's speed.

Reported: resident memory (VmRSS) after the warm-up, at the middle and at the end of the
stream, its growth over the second half, Python threads before ``start()`` and after
``stop()``, and frames captured, dreamed, dropped and delivered. Exit code 1 when memory grew
by ``--max-growth`` percent (2) or more over the second half, or a thread outlived the pipeline.

With ``--stream`` the camera is a real MJPEG server on 127.0.0.1 (``tests/netserve.py``, what
phone webcam apps serve) read through ``StreamSource``: a third of the way in it goes off the
air for ``--drop-for`` seconds and comes back, and the stream reconnects. Reported: resident
memory and output fps over the ``--window`` seconds before the drop and after the reconnect.
Exit code 1 when the stream did not come back, memory grew by ``--max-growth`` percent or
more across the reconnect, or the output fps after it fell below 80% of the fps before.

    python scripts/soak.py --stream --frames 3000          # 2 min at the server's 25 fps
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from livedream.args import (
    HelpFormatter,
    OneLineParser,
    layers_arg,
    positive_float,
    positive_int,
    size_arg,
)

WARMUP_FRAMES = 300  # ~10 s at 30 fps: the model is built, traced and its buffers allocated
STOP_TIMEOUT = 30.0  # seconds stop() may wait for a dream call in flight: a leak, not a slow call


@dataclass
class Figures:
    """What one soak run measured. Memory in MiB."""

    frames: int
    fps: float
    dream_size: str
    seconds: float
    captured: int
    dreamed: int
    output: int
    dropped: int
    rss_warm: float
    rss_middle: float
    rss_end: float
    growth_second_half_pct: float
    threads_before: int
    threads_after: int

    @property
    def leaked_threads(self) -> int:
        return self.threads_after - self.threads_before


def rss_mib() -> float:
    """This process's resident memory in MiB, from /proc/self/status (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # the kernel reports kB
    raise RuntimeError("no VmRSS in /proc/self/status: the soak run needs Linux")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--frames", type=positive_int, default=10_000, help="frames the camera delivers"
    )
    parser.add_argument(
        "--fps", type=positive_float, default=30.0, help="pace of the synthetic camera"
    )
    parser.add_argument(
        "--size",
        type=size_arg,
        default=(640, 480),
        metavar="WxH",
        help="camera frame size (default: 640x480)",
    )
    parser.add_argument(
        "--dream-size",
        type=size_arg,
        default=None,
        metavar="WxH",
        help="dream size (default: the CLI's own, 320x240 for a 640x480 camera)",
    )
    parser.add_argument(
        "--layers",
        type=layers_arg,
        default=(),
        help="comma-separated layers (default: the model's own)",
    )
    parser.add_argument("--precision", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_FRAMES,
        help="captured frames before the first memory reading (at most a tenth of --frames)",
    )
    parser.add_argument(
        "--max-growth", type=float, default=2.0, help="percent of growth over the second half"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="read a local MJPEG server that drops and comes back instead of the synthetic "
        "camera (--fps is then the server's rate)",
    )
    parser.add_argument(
        "--drop-for", type=positive_float, default=3.0, help="--stream: seconds off the air"
    )
    parser.add_argument(
        "--window",
        type=positive_float,
        default=10.0,
        help="--stream: seconds measured before the drop and after the reconnect",
    )
    args = parser.parse_args(argv)
    if args.frames < 10:
        parser.error(f"argument --frames: expected at least 10, got {args.frames}")
    return args


def soak(args: argparse.Namespace) -> Figures:
    """Runs the pipeline for ``args.frames`` captured frames and measures it."""
    from livedream.config import DreamConfig
    from livedream.dream import Dreamer
    from livedream.pipeline import LivePipeline
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink
    from livedream.sources import SyntheticSource

    width, height = args.size
    config = DreamConfig(layers=args.layers, dream_size=args.dream_size, precision=args.precision)
    dream = resolve_here(config)
    dream_w, dream_h = dream.size.size_for(width, height)
    source = SyntheticSource(width=width, height=height, fps=args.fps, frames=args.frames)
    sink = NullSink()
    warmup = max(1, min(args.warmup, args.frames // 10))
    middle = args.frames // 2
    rss_warm = rss_middle = 0.0

    threads_before = threading.active_count()
    started = time.perf_counter()
    pipeline = LivePipeline(source, lambda: Dreamer(dream), pace_fps=args.fps)
    with sink:
        pipeline.start()
        try:
            stats, last_report = pipeline.stats, time.perf_counter()
            while not pipeline.ended:
                frame = pipeline.next_frame(0.05)
                if frame is not None:
                    sink.write(frame.image)
                # Memory is read in this thread between frames, never in the middle of one.
                if not rss_warm and stats.captured >= warmup and stats.output > 0:
                    rss_warm = rss_mib()
                if not rss_middle and stats.captured >= middle:
                    rss_middle = rss_mib()
                now = time.perf_counter()
                if now - last_report >= 30.0:
                    last_report = now
                    print(
                        f"  {now - started:6.0f} s  captured {stats.captured:6d}  "
                        f"dreamed {stats.dreamed:5d}  dropped {stats.dropped:6d}  "
                        f"rss {rss_mib():7.1f} MiB",
                        flush=True,
                    )
            rss_end = rss_mib()
            if pipeline.error is not None:
                raise pipeline.error
        finally:
            pipeline.stop(timeout=STOP_TIMEOUT)
    seconds = time.perf_counter() - started
    threads_after = threading.active_count()
    stats = pipeline.stats
    growth = (rss_end - rss_middle) / rss_middle * 100.0 if rss_middle else float("nan")
    return Figures(
        frames=args.frames,
        fps=args.fps,
        dream_size=f"{dream_w}x{dream_h}",
        seconds=round(seconds, 1),
        captured=stats.captured,
        dreamed=stats.dreamed,
        output=sink.frames_written,
        dropped=stats.dropped,
        rss_warm=round(rss_warm, 1),
        rss_middle=round(rss_middle, 1),
        rss_end=round(rss_end, 1),
        growth_second_half_pct=round(growth, 2),
        threads_before=threads_before,
        threads_after=threads_after,
    )


@dataclass
class ReconnectFigures:
    """What a ``--stream`` soak run measured across the drop. Memory in MiB."""

    frames: int
    seconds: float
    dropped_at: float  # seconds into the run
    back_after: float  # seconds from the drop to the first frame of the reopened stream
    captured: int
    output: int
    rss_before: float
    rss_after: float
    fps_before: float
    fps_after: float
    threads_before: int
    threads_after: int

    @property
    def growth_pct(self) -> float:
        return (self.rss_after - self.rss_before) / self.rss_before * 100.0

    @property
    def leaked_threads(self) -> int:
        return self.threads_after - self.threads_before


def _rate(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Frames a second between ``start`` and ``end`` from (time, frames so far) samples."""
    inside = [(t, n) for t, n in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def soak_stream(args: argparse.Namespace) -> ReconnectFigures:
    """The live pipeline on a local MJPEG stream that goes off the air and comes back."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from netserve import MjpegServer

    from livedream.config import DreamConfig
    from livedream.dream import Dreamer
    from livedream.pipeline import LivePipeline
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink
    from livedream.sources import StreamSource

    width, height = args.size
    config = DreamConfig(layers=args.layers, dream_size=args.dream_size, precision=args.precision)
    dream = resolve_here(config)
    threads_before = threading.active_count()
    with MjpegServer(width=width, height=height, fps=args.fps) as server:
        source = StreamSource(server.url)
        sink = NullSink()
        pipeline = LivePipeline(source, lambda: Dreamer(dream))
        drop_at = args.frames // 3
        samples: list[tuple[float, int]] = []  # (seconds into the run, frames delivered)
        dropped = back = 0.0
        rss_before = 0.0
        reconnecting = False  # the source said so: "back" means after that
        with sink:
            started = time.perf_counter()
            pipeline.start()
            try:
                stats = pipeline.stats
                while not pipeline.ended:
                    frame = pipeline.next_frame(0.05)
                    if frame is not None:
                        sink.write(frame.image)
                    now = time.perf_counter() - started
                    samples.append((now, sink.frames_written))
                    if not dropped and stats.captured >= drop_at:
                        dropped, rss_before = now, rss_mib()
                        print(f"  {now:6.0f} s  the stream goes off the air", flush=True)
                        server.down.set()
                    elif dropped and server.down.is_set() and now - dropped >= args.drop_for:
                        server.down.clear()
                    if dropped and not back and source.status:
                        reconnecting = True
                    if reconnecting and not back and not source.status:
                        back = now  # the reopened stream delivers again
                        print(f"  {now:6.0f} s  the stream is back", flush=True)
                    if back and stats.captured >= args.frames and now >= back + args.window + 1:
                        break
                rss_after = rss_mib()
                if pipeline.error is not None:
                    raise pipeline.error
            finally:
                pipeline.stop(timeout=STOP_TIMEOUT)
        seconds = time.perf_counter() - started
        source.close()
    stats = pipeline.stats
    # The output rate over the window before the drop and the window after the reconnect
    # (from a second after it, once the first frames of the reopened stream went out).
    return ReconnectFigures(
        frames=args.frames,
        seconds=round(seconds, 1),
        dropped_at=round(dropped, 1),
        back_after=round(back - dropped, 1) if back else float("nan"),
        captured=stats.captured,
        output=sink.frames_written,
        rss_before=round(rss_before, 1),
        rss_after=round(rss_after, 1),
        fps_before=round(_rate(samples, dropped - args.window, dropped), 2),
        fps_after=round(_rate(samples, back + 1.0, back + 1.0 + args.window), 2) if back else 0.0,
        threads_before=threads_before,
        threads_after=threading.active_count(),
    )


def report_stream(args: argparse.Namespace, figures: ReconnectFigures) -> list[str]:
    """Prints the figures of a ``--stream`` run; returns the problems found."""
    print(f"  wall time           {figures.seconds:.1f} s")
    print(f"  frames              {figures.captured} captured, {figures.output} delivered")
    print(
        f"  drop                at {figures.dropped_at:.0f} s for {args.drop_for:g} s; "
        f"frames again {figures.back_after:.1f} s after it"
    )
    print(f"                      before the drop   after the reconnect   ({args.window:g} s each)")
    print(f"  resident memory     {figures.rss_before:9.1f} MiB   {figures.rss_after:9.1f} MiB")
    print(f"  output fps          {figures.fps_before:9.2f}       {figures.fps_after:9.2f}")
    print(f"  python threads      {figures.threads_before} before, {figures.threads_after} after")
    if args.json is not None:
        args.json.write_text(json.dumps({**vars(figures)}, indent=2) + "\n")
    problems = []
    if math.isnan(figures.back_after):
        problems.append("the stream did not come back")
    elif not figures.growth_pct < args.max_growth:
        problems.append(
            f"memory grew {figures.growth_pct:.2f} % across the reconnect "
            f"(limit {args.max_growth:g} %)"
        )
    if figures.fps_after < 0.8 * figures.fps_before:
        problems.append(
            f"output fps fell from {figures.fps_before:.2f} to {figures.fps_after:.2f} "
            "after the reconnect"
        )
    if figures.leaked_threads > 0:
        problems.append(f"{figures.leaked_threads} thread(s) outlived the stopped pipeline")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from livedream.runtime import import_tensorflow, quiet_libraries

    quiet_libraries(verbose=False)
    import_tensorflow(verbose=False)
    print(
        f"soak: {args.frames} frames at {args.fps:g} fps (~{args.frames / args.fps:.0f} s), "
        f"{'MJPEG stream' if args.stream else 'camera'} {args.size[0]}x{args.size[1]}",
        flush=True,
    )
    if args.stream:
        problems = report_stream(args, soak_stream(args))
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        if not problems:
            print("PASS")
        return 1 if problems else 0
    figures = soak(args)
    print(f"  dream size          {figures.dream_size}")
    print(f"  wall time           {figures.seconds:.1f} s")
    print(
        f"  frames              {figures.captured} captured, {figures.dreamed} dreamed, "
        f"{figures.output} delivered, {figures.dropped} dropped"
    )
    print(
        f"  resident memory     {figures.rss_warm:.1f} MiB after warm-up, "
        f"{figures.rss_middle:.1f} MiB at the middle, {figures.rss_end:.1f} MiB at the end"
    )
    print(f"  second-half growth  {figures.growth_second_half_pct:+.2f} %")
    print(f"  python threads      {figures.threads_before} before, {figures.threads_after} after")
    if args.json is not None:
        args.json.write_text(json.dumps({**vars(figures)}, indent=2) + "\n")
    problems = []
    if not figures.growth_second_half_pct < args.max_growth:
        problems.append(
            f"memory grew {figures.growth_second_half_pct:.2f} % over the second half "
            f"(limit {args.max_growth:g} %)"
        )
    if figures.leaked_threads > 0:
        problems.append(f"{figures.leaked_threads} thread(s) outlived the stopped pipeline")
    if figures.captured < figures.frames:
        problems.append(f"only {figures.captured} of {figures.frames} frames were captured")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if not problems:
        print("PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
