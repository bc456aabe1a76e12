"""The deep-render flags (``--octaves``, ``--octave-steps``, ``--octave-scale``,
``--chunk-frames``, ``--workers``, ``--cluster``) and the ``DeepConfig`` they make;
``args.build_parser`` adds them. Their ranges come from ``livedream.limits``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import NoReturn

from livedream import limits
from livedream.config import DeepConfig, DreamConfig
from livedream.flags import float_in, int_in


def add_deep_flags(parser: argparse.ArgumentParser) -> None:
    """Octaves (photos and deep video renders), chunks and workers (``livedream.deep``)."""
    defaults, deep = DreamConfig(), DeepConfig()
    group = parser.add_argument_group(
        "deep renders (a video file, resumable; any of these flags makes a render deep)"
    )
    group.add_argument(
        "--octaves",
        type=int_in(*limits.OCTAVES_RANGE),
        default=None,
        help=f"scales each frame is dreamed at, small to full, up to {limits.OCTAVES_RANGE[1]} "
        f"(default: {defaults.octaves} for a photo, 1 for a video)",
    )
    group.add_argument(
        "--octave-steps",
        type=int_in(*limits.OCTAVE_STEPS_RANGE),
        default=None,
        help=f"gradient steps per octave, up to {limits.OCTAVE_STEPS_RANGE[1]} (default: "
        f"{defaults.octave_steps} for a photo; a video shares --steps out over its octaves)",
    )
    group.add_argument(
        "--octave-scale",
        type=float_in(*limits.OCTAVE_SCALE_RANGE, above=True),
        default=defaults.octave_scale,
        help="size ratio between neighbouring octaves",
    )
    group.add_argument(
        "--chunk-frames",
        type=int_in(*limits.CHUNK_FRAMES_RANGE),
        default=None,
        metavar="N",
        help=f"cut shots longer than N frames into chunks (default {deep.chunk_frames}); "
        "finished chunks are kept beside --output, so running the same command again resumes",
    )
    group.add_argument(
        "--workers",
        type=int_in(*limits.WORKERS_RANGE),
        default=None,
        metavar="N",
        help="dream N chunks at once in N processes (Ray: pip install 'livedream[cluster]'); "
        "with --cluster default one a node",
    )
    group.add_argument(
        "--cluster",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="dream the chunks on a running Ray cluster (HOST:PORT of its head; no value: "
        "$RAY_ADDRESS)",
    )


def deep_config(
    args: argparse.Namespace, parser_error: Callable[[str], NoReturn]
) -> DeepConfig | None:
    """The deep render the flags ask for, or None (a plain render, or a photo)."""
    cluster = args.cluster
    if cluster == "":
        cluster = os.environ.get("RAY_ADDRESS") or None
        if cluster is None:
            parser_error("--cluster without an address needs RAY_ADDRESS set (HOST:PORT)")
    asked = (args.octaves or 1) > 1 or args.octave_steps is not None
    if not asked and args.chunk_frames is None and args.workers is None and cluster is None:
        return None
    return DeepConfig(
        octaves=args.octaves or 1,
        octave_steps=args.octave_steps,
        chunk_frames=args.chunk_frames or DeepConfig.chunk_frames,
        workers=args.workers or (0 if cluster is not None else 1),
        cluster=cluster,
    )
