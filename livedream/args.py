"""The command line: the parser, where the input comes from, and turning flags into a
``RunConfig``.

The parser class, the help formatter and the value checks (``livedream.flags``) are shared
with ``benchmarks/fps.py`` and ``scripts/soak.py``, which import them from here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from livedream import __version__, limits
from livedream.config import (
    COMPILE_MODES,
    LIVE_FACE_STRENGTH,
    PRECISIONS,
    DreamConfig,
    RunConfig,
)
from livedream.control.config import add_control_args, control_args
from livedream.deep.flags import add_deep_flags, deep_config
from livedream.flags import (
    HelpFormatter,
    OneLineParser,
    add_weights_flags,
    channels_arg,
    dream_rate_arg,
    dream_size_arg,
    float_in,
    fraction,
    int_in,
    layers_arg,
    positive_float,
    positive_int,
    quality_arg,
    size_arg,
)
from livedream.models import AUTO_MODEL, MODEL_CHOICES
from livedream.preview import KEYS_HELP

__all__ = [  # the value checks live in ``flags``; the benchmark and soak script import them here
    "HelpFormatter",
    "OneLineParser",
    "build_parser",
    "channels_arg",
    "fraction",
    "layers_arg",
    "parse_args",
    "positive_float",
    "positive_int",
    "quality_arg",
    "size_arg",
]

SAMPLE_CLIP = Path(__file__).parent / "data" / "sample.mp4"
DEMO_OUTPUT = Path("dream.mp4")
DEFAULT_INPUT = "0"  # the first webcam
INPUT_ENV = "LIVEDREAM_INPUT"  # what --input-env reads when given no name

# The demo: a first dreamed clip in well under a minute on a laptop CPU. A 4 s stretch of the
# sample, a keyframe every 3rd frame (the frames between carry it), a smaller dream with one
# more step so it is as clearly dreamed as a full render. Flags given explicitly still win.
DEMO_FRAMES = 100
DEMO_DREAM_EVERY = 3
DEMO_SHORT_SIDE = 180
DEMO_STEPS = 3
# The bundled, offline model unless --model names another: the same first clip everywhere.
DEMO_MODEL = "vgg16_hed"


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
    given = io.add_mutually_exclusive_group()
    given.add_argument(
        "--input",
        "-i",
        default=None,
        help="webcam index (0, 1, ...), device path (/dev/video0), video file, image, or a "
        "network stream URL: rtsp:// rtsps:// http:// https:// udp:// tcp:// (an IP camera, "
        "a phone webcam app's MJPEG, a video file on a server); its password, a token as its "
        "user name and secret query values (pwd=, token=, key=...) are never shown "
        f"(default: {DEFAULT_INPUT}, the first webcam)",
    )
    given.add_argument(
        "--input-env",
        nargs="?",
        const=INPUT_ENV,
        default=None,
        metavar="VAR",
        help=f"take the input from environment variable VAR (default {INPUT_ENV}), so that a "
        "stream URL with its password stays out of ps and the shell's history",
    )
    given.add_argument(
        "--input-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="take the input from the first line of this file (chmod 600 it): a stream URL "
        "with its password, kept off the command line",
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
        type=int_in(1, limits.MAX_FRAMES_MAX),
        default=None,
        metavar="N",
        help="stop after N output frames",
    )
    cam = parser.add_argument_group("camera")
    cam.add_argument("--width", type=int_in(*limits.SIDE_RANGE), help="camera width to ask for")
    cam.add_argument("--height", type=int_in(*limits.SIDE_RANGE), help="camera height to ask for")
    cam.add_argument(
        "--fps",
        type=float_in(*limits.FPS_RANGE),
        default=None,
        help="camera fps to ask for; the rate a stream URL is taken to run at; the pace of a "
        f"photo shown live (default 30); {limits.FPS_RANGE[0]:g} to {limits.FPS_RANGE[1]:g}",
    )
    cam.add_argument("--mirror", action="store_true", help="flip the picture left-right")
    dream = parser.add_argument_group("dream")
    dream.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default=defaults.model,
        help="network to dream with; auto: inception_v3 where its weights are here "
        "(--get-weights inception_v3), else vgg16_hed (works offline)",
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
        "--steps",
        type=int_in(*limits.STEPS_RANGE),
        default=defaults.steps,
        help=f"gradient steps per frame, up to {limits.STEPS_RANGE[1]} (above "
        f"{limits.STEPS_IN_ONE_CALL} in a deep render only: see --chunk-frames)",
    )
    dream.add_argument(
        "--step-size",
        type=float_in(0.0, limits.STEP_SIZE_MAX, above=True),
        default=defaults.step_size,
        help="strength: fraction of the 0..255 range moved per step (above 0, up to 1)",
    )
    dream.add_argument(
        "--dream-size",
        type=dream_size_arg,
        default=None,
        metavar="WxH|auto",
        help="size the dream runs at. auto: the largest size whose dream refreshes "
        "--dream-rate times a second on this machine, measured as the run goes (the default "
        f"of a live run); a file render's default is short side {defaults.short_side}, keeping "
        "the aspect ratio; a photo is dreamed at its own size, up to 1280 px",
    )
    dream.add_argument(
        "--dream-rate",
        type=dream_rate_arg,
        default=defaults.dream_rate,
        metavar="HZ",
        help="dreams a second the automatic dream size holds: higher keeps more of the dream on "
        "a moving picture, at a smaller size",
    )
    dream.add_argument(
        "--dream-every",
        type=int_in(1, limits.DREAM_EVERY_MAX),
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
    dream.add_argument(
        "--seed", type=int_in(*limits.SEED_RANGE), default=defaults.seed, help="random jitter seed"
    )
    add_control_args(parser)
    parser.add_argument("--hud", action="store_true", help="start with the heads-up overlay on")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show debug logs and TensorFlow's own messages"
    )
    parser.add_argument("--version", action="version", version=f"livedream {__version__}")
    add_weights_flags(parser)
    add_deep_flags(parser)
    return parser


def read_input(
    parser: argparse.ArgumentParser, args: argparse.Namespace, environ: Mapping[str, str]
) -> str:
    """The input: ``--input``, or the URL behind ``--input-env`` / ``--input-file``, which keep
    a password off the command line. Exits through ``parser.error`` (one line, code 2)."""
    if args.input_env is not None:
        value = environ.get(args.input_env, "").strip()
        if not value:
            parser.error(
                f"argument --input-env: the environment variable {args.input_env} is empty or "
                f"not set; expected the input in it (export {args.input_env}='rtsp://...')"
            )
        return value
    if args.input_file is not None:
        path: Path = args.input_file
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows Notepad) is dropped
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            parser.error(f"argument --input-file: cannot read {path} ({why})")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            parser.error(
                f"argument --input-file: {path} is empty; expected the input (a stream URL) "
                "on its first line"
            )
        return lines[0]
    return args.input if args.input is not None else DEFAULT_INPUT


def parse_args(
    argv: Sequence[str] | None, *, environ: Mapping[str, str] | None = None
) -> tuple[RunConfig, argparse.Namespace]:
    """Parses ``argv`` into a ``RunConfig`` (and the raw namespace for the one-off flags).

    ``environ`` is where ``--input-env`` looks (``os.environ`` when None).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.weights_url is not None and args.get_weights is None:
        parser.error(
            "argument --weights-url: it says where --get-weights downloads from, and no "
            "--get-weights MODEL was given; add --get-weights inception_v3 (or vgg16), or give "
            "a file you have with --weights PATH"
        )
    args.input = read_input(parser, args, os.environ if environ is None else environ)
    # --model auto is decided at the door (resolve.choose_model); --demo keeps the bundled one.
    named = args.layers or args.channels or args.weights  # these name the network themselves
    demo_model = args.demo and args.model == AUTO_MODEL and not named
    dream = DreamConfig(
        model=DEMO_MODEL if demo_model else args.model,
        model_why="--demo runs the bundled model" if demo_model else "",
        weights=args.weights,
        layers=args.layers or (),
        channels=tuple(args.channels or ()),
        guide=args.guide,
        steps=args.steps,
        step_size=args.step_size,
        dream_size=None if args.dream_size == "auto" else args.dream_size,
        auto_size=True if args.dream_size == "auto" else None,
        dream_rate=args.dream_rate,
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
        control=control_args(parser, args),
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


# -- the control page, OSC and looks (livedream.control) ----------------------------------------
