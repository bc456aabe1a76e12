"""The command line: the parser, its value checks, and turning flags into a ``RunConfig``.

The parser class, the help formatter and the value checks are shared with
``benchmarks/fps.py`` and ``scripts/soak.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from livedream import __version__
from livedream.config import (
    COMPILE_MODES,
    LIVE_FACE_STRENGTH,
    PRECISIONS,
    DreamConfig,
    RunConfig,
)
from livedream.deep.flags import add_deep_flags, deep_config
from livedream.models import MODELS
from livedream.preview import KEYS_HELP
from livedream.runtime import EXIT_USAGE
from livedream.urls import url_scheme
from livedream.weights import KERAS_WEIGHTS

SAMPLE_CLIP = Path(__file__).parent / "data" / "sample.mp4"
DEMO_OUTPUT = Path("dream.mp4")

# The demo: a first dreamed clip in well under a minute on a laptop CPU. A 4 s stretch of the
# sample, a keyframe every 3rd frame (the frames between carry it), a smaller dream with one
# more step so it is as clearly dreamed as a full render. Flags given explicitly still win.
DEMO_FRAMES = 100
DEMO_DREAM_EVERY = 3
DEMO_SHORT_SIDE = 180
DEMO_STEPS = 3


class OneLineParser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit code 2, not argparse's usage dump.

    Shared with ``benchmarks/fps.py`` and ``scripts/soak.py``, with the value checks below.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to a flag's help unless X is None/False or the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def size_arg(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 320x240, got {text!r}"
        ) from None
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise argparse.ArgumentTypeError(
            f"expected a size from 16x16 to 8192x8192 such as 320x240, got {text}"
        )
    return width, height


def quality_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 51, got {text!r}"
        ) from None
    if not 0 <= value <= 51:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 51, got {value}")
    return value


def layers_arg(text: str) -> tuple[str, ...]:
    layers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not layers:
        raise argparse.ArgumentTypeError(f"expected layer names like block4_conv3, got {text!r}")
    return layers


def channels_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``LAYER:C1,C2`` or ``C1,C2`` (the one dreamed layer) -> (layer or "", channels)."""
    layer, sep, numbers = text.rpartition(":")
    try:
        channels = tuple(int(part) for part in numbers.split(",") if part.strip())
    except ValueError:
        channels = ()
    if not channels or min(channels) < 0 or (sep and not layer.strip()):
        raise argparse.ArgumentTypeError(
            f"expected LAYER:C1,C2 or C1,C2 with channel numbers from 0 "
            f"(e.g. block4_conv3:12,77), got {text!r}"
        )
    return layer.strip(), channels


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every default is shown by ``--help``."""
    defaults = DreamConfig()
    parser = OneLineParser(
        prog="livedream",
        description="Real-time DeepDream filter for webcams, network streams, video files and "
        "photos.",
        epilog=KEYS_HELP + ". Exit codes: 0 done, 1 error, 2 bad usage, 130 interrupted.",
        formatter_class=HelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "--input",
        "-i",
        default="0",
        help="webcam index (0, 1, ...), device path (/dev/video0), video file, image, or a "
        "network stream URL: rtsp:// rtsps:// http:// https:// udp:// tcp:// (an IP camera, "
        "a phone webcam app's MJPEG, a video file on a server); a password in it is never shown",
    )
    io.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="write a video file (.mp4 .m4v .mov .mkv: H.264; .webm: VP9; .avi: MJPEG; a file "
        "input's sound is kept), or an image (.png .jpg .webp ...) for a photo input",
    )
    io.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a preview window (default: on for webcams and files with nothing else to "
        "write, when a display exists)",
    )
    io.add_argument(
        "--virtual-cam",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help="publish to a virtual camera (optionally a device such as /dev/video10)",
    )
    io.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    io.add_argument(
        "--realtime",
        action="store_true",
        help="play a video file at its own fps as if it were a camera (the dream refreshes as "
        "fast as it can, every frame goes out): preview or record what a live run looks like",
    )
    io.add_argument(
        "--quality",
        type=quality_arg,
        default=RunConfig.quality,
        metavar="Q",
        help="video file quality, 0 (best, largest) to 51 (smallest); H.264 in .mp4 .mov .mkv, "
        "VP9 in .webm",
    )
    io.add_argument(
        "--demo",
        action="store_true",
        help=f"dream a {DEMO_FRAMES}-frame stretch of the bundled sample clip into {DEMO_OUTPUT}, "
        "quickly (replaces its own output)",
    )
    io.add_argument("--list-cameras", action="store_true", help="list webcams and exit")
    io.add_argument(
        "--doctor",
        action="store_true",
        help="check this machine (TensorFlow, cameras, display, virtual camera, weights), "
        "say how to fix each problem, and exit",
    )
    io.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N output frames",
    )
    cam = parser.add_argument_group("camera")
    cam.add_argument("--width", type=positive_int, default=None, help="camera width to ask for")
    cam.add_argument("--height", type=positive_int, default=None, help="camera height to ask for")
    cam.add_argument(
        "--fps",
        type=positive_float,
        default=None,
        help="camera fps to ask for; the rate a stream URL is taken to run at; the pace of a "
        "photo shown live (default 30)",
    )
    cam.add_argument("--mirror", action="store_true", help="flip the picture left-right")
    dream = parser.add_argument_group("dream")
    dream.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=defaults.model,
        help="network to dream with (vgg16_hed works offline)",
    )
    dream.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="local Keras .h5 / .weights.h5 file instead of the model's own",
    )
    dream.add_argument(
        "--layers",
        type=layers_arg,
        default=None,
        help="comma-separated layers to dream (default: the model's own)",
    )
    dream.add_argument(
        "--channels",
        type=channels_arg,
        action="append",
        default=None,
        metavar="LAYER:C1,C2",
        help="dream only these channels of a layer (repeatable; C1,C2 alone when one layer is "
        "dreamed); the preview's c key cycles channel presets",
    )
    dream.add_argument(
        "--guide",
        type=Path,
        default=None,
        metavar="IMAGE",
        help="guided dreaming: the dream looks for this image's motifs (the preview's g key "
        "turns it off and on)",
    )
    dream.add_argument(
        "--steps", type=positive_int, default=defaults.steps, help="gradient steps per frame"
    )
    dream.add_argument(
        "--step-size",
        type=positive_float,
        default=defaults.step_size,
        help="strength: fraction of the 0..255 range moved per step",
    )
    dream.add_argument(
        "--dream-size",
        type=size_arg,
        default=None,
        metavar="WxH",
        help=f"size the dream runs at (default: short side {defaults.short_side},"
        " keeping the aspect ratio); a photo is dreamed at its own size, up to 1280 px",
    )
    dream.add_argument(
        "--dream-every",
        type=positive_int,
        default=RunConfig.dream_every,
        metavar="N",
        help="file renders: dream every Nth frame and carry it onto the frames between "
        "(about N times faster); live runs always dream as often as they can",
    )
    dream.add_argument(
        "--blend",
        type=fraction,
        default=defaults.blend,
        help="share of the previous frame's dream carried on (0 = none)",
    )
    dream.add_argument(
        "--no-flow",
        action="store_true",
        help="carry the dream in place instead of following motion",
    )
    dream.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="number format; auto picks the fastest for this machine",
    )
    dream.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=defaults.compile,
        help="graph (TensorFlow), xla or eager; auto picks per device",
    )
    dream.add_argument(
        "--face-strength",
        type=fraction,
        default=None,
        metavar="F",
        help="share of the dream kept on faces, 0 (faces untouched) to 1 (no protection); "
        f"default {LIVE_FACE_STRENGTH} live (webcam, stream, preview, virtual camera, "
        "--realtime), 1 for files rendered to files",
    )
    dream.add_argument("--seed", type=int, default=defaults.seed, help="random jitter seed")
    parser.add_argument("--hud", action="store_true", help="start with the heads-up overlay on")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show debug logs and TensorFlow's own messages"
    )
    parser.add_argument("--version", action="version", version=f"livedream {__version__}")
    add_weights_flags(parser)
    add_deep_flags(parser)
    return parser


def weights_url_arg(text: str) -> str:
    if url_scheme(text) not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def add_weights_flags(parser: argparse.ArgumentParser) -> None:
    """``--get-weights MODEL`` and its ``--weights-url`` (``livedream.weights``)."""
    group = parser.add_argument_group("model weights")
    group.add_argument(
        "--get-weights",
        choices=sorted(KERAS_WEIGHTS),
        default=None,
        metavar="MODEL",
        help="download MODEL's ImageNet weights (inception_v3: ~87 MB, vgg16: ~59 MB) into "
        "Keras' cache, check them against Keras' published hash, and exit",
    )
    group.add_argument(
        "--weights-url",
        type=weights_url_arg,
        default=None,
        metavar="URL",
        help="with --get-weights: download from this URL (a mirror) instead of Keras' own",
    )


def parse_args(argv: Sequence[str] | None) -> tuple[RunConfig, argparse.Namespace]:
    """Parses ``argv`` into a ``RunConfig`` (and the raw namespace for the one-off flags)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    dream = DreamConfig(
        model=args.model,
        weights=args.weights,
        layers=args.layers or (),
        channels=tuple(args.channels or ()),
        guide=args.guide,
        steps=args.steps,
        step_size=args.step_size,
        dream_size=args.dream_size,
        blend=args.blend,
        flow=not args.no_flow,
        octaves=args.octaves or DreamConfig.octaves,
        octave_steps=args.octave_steps or DreamConfig.octave_steps,
        octave_scale=args.octave_scale,
        precision=args.precision,
        compile=args.compile,
        seed=args.seed,
    )
    config = RunConfig(
        input=args.input,
        output=args.output,
        preview=args.preview,
        virtual_cam=args.virtual_cam,
        width=args.width,
        height=args.height,
        fps=args.fps,
        mirror=args.mirror,
        max_frames=args.max_frames,
        overwrite=args.overwrite,
        quality=args.quality,
        realtime=args.realtime,
        dream_every=args.dream_every,
        hud=args.hud,
        face_strength=args.face_strength,
        verbose=args.verbose,
        dream=dream,
        deep=deep_config(args, parser.error),
    )
    if args.demo:
        config = demo_config(config, args)
    return config, args


def demo_config(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """``--demo``: the bundled sample clip into ``dream.mp4``, quickly (see above)."""
    dream = config.dream
    if args.steps == DreamConfig.steps:
        dream = replace(dream, steps=DEMO_STEPS)
    if args.dream_size is None:
        dream = replace(dream, short_side=DEMO_SHORT_SIDE)
    return replace(
        config,
        input=str(SAMPLE_CLIP),
        output=config.output or DEMO_OUTPUT,
        overwrite=config.overwrite or config.output is None,
        max_frames=config.max_frames or DEMO_FRAMES,
        dream_every=DEMO_DREAM_EVERY
        if args.dream_every == RunConfig.dream_every
        else (config.dream_every),
        demo=True,
        dream=dream,
    )
