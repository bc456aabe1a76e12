"""How fast livedream dreams, side by side with the TensorFlow tutorial's way, on one machine.

    .venv/bin/python benchmarks/fps.py                    # full run, a few minutes on 2 vCPUs
    .venv/bin/python benchmarks/fps.py --quick            # fewer repetitions, under 3 minutes
    .venv/bin/python benchmarks/fps.py --json bench.json  # also write every figure as JSON

One process measures, after a burn-in each time (traces, compiles, caches):

1. step cost: ms per dream step of each precision x compile variant (``build_step``); the clock
   stops once the result is back on the host (the step returns numpy), and which variant
   ``choose_variant("auto", "auto", ...)`` picks, and whether it is the fastest (within 5%);
2. baseline: the TensorFlow DeepDream tutorial's ``DeepDream`` module (float32, ``tf.function``,
   no XLA, no temporal carry) with our model and layers, frame by frame over the clip;
3. pipeline: end-to-end output fps of ``RenderPipeline`` over the clip into a null
   sink at the live defaults, and the per-frame dream time;
4. live (issue 9): the clip as a 30 fps camera through ``LivePipeline``: output,
   dream and capture fps, compositor time, dream age, capture-to-sink latency (p50, p95) of
   every output frame, and its flicker against the same frames dreamed fresh and with the carry;
5. flicker: ``temporal.flicker`` of the default dreamer against one with no carry (blend 0);
6. memory: the process's peak resident memory;
7. peak: the step's FLOP rate over the fastest of its own conv layers timed alone;
   then ``step_ms_by_model``: one step of each model ``--model auto`` picks from, at 320x240,
   interleaved (``model_cost.py``).
8. control viewer (issue 19): output and dream fps of a live run with a viewer on the control
   page's MJPEG live view and without one, in interleaved stretches (``control.py``).

``frame_ms`` is livedream's mean per-frame dream time in the pipeline (downscale, flow carry, K
steps, upscale, composite); ``baseline_frame_ms`` the tutorial loop's mean time per frame, read to
write; ``speedup_vs_baseline`` = baseline_frame_ms / frame_ms; ``dream_only_fps`` = 1000 / (K x
best auto step ms), the ceiling K compiled steps alone allow; ``pipeline_efficiency`` =
pipeline_fps / dream_only_fps.

The pipeline runs first, so ``peak_rss_mb_live`` is the live app's own peak (TensorFlow, one
model, the threads); ``peak_rss_mb`` is the whole run's, every variant included. The step
variants are built first and then timed round-robin, so a change in machine load (other jobs on
a shared machine) hits them alike; each section's start, length and load average go in the JSON.
Exit codes: 0 done, 1 error, 2 bad usage.

This file reads the flags and runs the sections in order; the rest sits beside it, imported by
module name (this folder is on ``sys.path`` when the script runs): ``settings.py`` (the run's
settings), ``machine.py`` (machine info, CPU seconds, memory, section clock, clip frames),
``step_cost.py`` (1), ``baseline.py`` (2), ``pipeline_run.py`` (3, 5), ``live.py`` (4),
``conv_peak.py`` (7), ``control.py`` (8), ``result.py`` (the
typed result, whose field names are the JSON keys) and ``report.py`` (targets, tables, JSON).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console

from baseline import run_baseline
from control import STRETCH_SECONDS, measure_control
from conv_peak import measure_peak
from faces import measure_faces
from ladder import RUNGS, RUNGS_QUICK, measure_ladder
from live import LIVE_SECONDS, LIVE_SECONDS_QUICK, measure_live
from livedream.args import (
    HelpFormatter,
    OneLineParser,
    layers_arg,
    positive_int,
    size_arg,
)
from livedream.errors import LivedreamError
from livedream.models import MODELS, check_layers, get_spec
from livedream.runtime import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    import_tensorflow,
    quiet_libraries,
)
from machine import SectionClock, load_avg, machine_info, peak_rss_mb, read_frames
from model_cost import SIZE as MODEL_SIZE
from model_cost import measure_models
from pipeline_run import measure_breakdown, measure_flicker, measure_pipeline
from report import noise_warnings, print_report, targets, targets_note, write_json
from result import BenchResult
from settings import BUNDLED_CLIP, BURN_IN_FRAMES, LIVE_PACE_FPS, SHARED_CLIP, Settings
from step_cost import (
    VARIANT_COMPILES,
    VARIANT_PRECISIONS,
    VariantResult,
    step_figures,
    time_step,
    time_variants,
    variant_plan,
)


# -- arguments -----------------------------------------------------------------------------------
def _variants(text: str) -> tuple[tuple[str, str], ...]:
    if text.strip() == "all":
        return tuple((p, c) for p in VARIANT_PRECISIONS for c in VARIANT_COMPILES)
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        precision, _, compile_mode = part.strip().partition("/")
        if precision not in VARIANT_PRECISIONS or compile_mode not in VARIANT_COMPILES:
            raise argparse.ArgumentTypeError(
                f"expected PRECISION/COMPILE items such as bfloat16/graph,float32/xla (precision "
                f"{'|'.join(VARIANT_PRECISIONS)}, compile {'|'.join(VARIANT_COMPILES)}) or 'all', "
                f"got {part.strip()!r}"
            )
        out.append((precision, compile_mode))
    return tuple(dict.fromkeys(out))


def _clip(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"expected an existing video file, got {text!r}")
    return path


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = OneLineParser(
        prog="benchmarks/fps.py",
        description="Measure livedream's step cost, fps, latency, flicker and memory.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--model", choices=sorted(MODELS), default="vgg16_hed", help="network to dream with"
    )
    parser.add_argument(
        "--layers", type=layers_arg, default=None, help="comma-separated (default: the model's)"
    )
    parser.add_argument(
        "--dream-size",
        type=size_arg,
        default=(320, 240),
        metavar="WxH",
        help="size the dream runs at (default: 320x240, the targets' size)",
    )
    parser.add_argument("--steps", type=positive_int, default=2, help="dream steps per frame")
    parser.add_argument(
        "--clip",
        type=_clip,
        default=None,
        help=f"video to dream (default: {SHARED_CLIP.name} from ../shared/media, else the "
        "bundled sample clip)",
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="measured frames per clip section (default: 100, 20 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and frames, slow variants skipped"
    )
    parser.add_argument(
        "--variants",
        type=_variants,
        default=None,
        help="PRECISION/COMPILE list to time, or 'all' (default: what is reasonable here)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="run the deep-render section instead (benchmarks/deep_render.py: fps with 1 and 2 "
        "workers, the seam check); minutes",
    )
    args = parser.parse_args(argv)
    try:
        layers = check_layers(get_spec(args.model), args.layers or ())
        folder = args.json.resolve().parent if args.json is not None else None
        if folder is not None and not os.access(folder, os.W_OK):  # before minutes of work
            parser.error(f"argument --json: folder {folder} is missing or not writable")
    except LivedreamError as exc:
        parser.error(str(exc))
    clip = args.clip or (SHARED_CLIP if SHARED_CLIP.is_file() else BUNDLED_CLIP)
    return Settings(
        model=args.model,
        layers=layers,
        dream_size=args.dream_size,
        steps=args.steps,
        clip=clip,
        frames=args.frames or (20 if args.quick else 100),
        quick=args.quick,
        variants=args.variants,
        json_path=args.json,
    )


# -- the run ---------------------------------------------------------------------------------------
def run(settings: Settings, console: Console, log: Console) -> BenchResult:
    """Measures every section in order and prints the tables; returns every figure."""
    from livedream.dream import choose_variant, detect_device

    section = SectionClock(log)
    device = detect_device()
    auto = choose_variant("auto", "auto", device)
    auto_name = "/".join(auto)
    machine = machine_info(device)
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    console.print(
        f"[bold]{machine.cpu}[/], {machine.cores} cores, accelerator: {machine.accelerator}; "
        f"{settings.model} ({','.join(settings.layers)}) at "
        f"{settings.dream_size[0]}x{settings.dream_size[1]}, {settings.steps} steps; "
        f"clip {settings.clip.name}; auto picks {auto_name}",
        highlight=False,
    )

    image = cv2.resize(read_frames(settings.clip, 1)[0][0], settings.dream_size).astype(np.float32)
    burn_in, reps = 2, 3 if settings.quick else 10

    # The pipeline first, so that its memory peak is the live app's alone; the dream-only
    # ceiling and the baseline right after it, so that their ratios see the same machine load.
    section("pipeline", f"pipeline: {settings.frames} frames after {BURN_IN_FRAMES} burn-in")
    pipeline, step = measure_pipeline(settings)
    peak_rss_mb_live = peak_rss_mb()
    section("ceiling", f"dream-only ceiling: the pipeline's step, {reps} timed calls")
    near_pipeline_ms = min(time_step(step, burn_in, reps, settings, image))
    del step
    gc.collect()
    section("baseline", f"baseline: the tutorial's DeepDream, {settings.frames} frames, float32")
    baseline = run_baseline(settings)
    seconds = LIVE_SECONDS_QUICK if settings.quick else LIVE_SECONDS
    section("live", f"live: {seconds:g} s as a {LIVE_PACE_FPS:g} fps camera")
    live, latency, step = measure_live(settings)
    del step
    gc.collect()
    rungs = len(RUNGS_QUICK if settings.quick else RUNGS)
    section("ladder", f"ladder: {rungs} fixed dream sizes and the automatic one, live")
    ladder = measure_ladder(settings)
    gc.collect()
    section("flicker", f"flicker: {settings.frames} frames, default dreamer vs blend 0")
    frames, decode_ms = read_frames(settings.clip, settings.frames)
    flicker, step = measure_flicker(settings, frames)
    section("faces", "faces: hit rate on the footage; a face turning, live at 30 fps, protected")
    faces = measure_faces(settings)
    section("control_viewer", f"control page: {STRETCH_SECONDS:g} s stretches, viewer off / on")
    control_viewer = measure_control(settings)
    section("breakdown", "breakdown: each stage of a frame timed one by one")
    breakdown_ms = measure_breakdown(settings, frames, step, decode_ms)
    del step, frames
    gc.collect()

    plan = [
        (VariantResult(precision, compile_mode, [], note), burn_in, reps)
        for precision, compile_mode, burn_in, reps, note in variant_plan(settings, device, auto)
    ]
    time_variants(plan, settings, image, section)
    variants = [variant for variant, _, _ in plan]
    step_cost, auto_result = step_figures(variants, auto_name, near_pipeline_ms)
    section("peak", "peak: each conv layer's forward timed alone")
    peak = measure_peak(settings)
    model_image = cv2.resize(image, MODEL_SIZE) if image.shape[1::-1] != MODEL_SIZE else image
    step_ms_by_model = measure_models(model_image, rounds=reps, section=section)

    dream_only_fps = 1000.0 / (settings.steps * step_cost.auto_step_ms)
    result = BenchResult(
        machine=machine,
        model=settings.model,
        layers=list(settings.layers),
        dream_size=list(settings.dream_size),
        steps=settings.steps,
        clip=str(settings.clip),
        quick=settings.quick,
        timestamp=timestamp,
        sections=section.sections,
        pipeline=pipeline,
        peak_rss_mb_live=peak_rss_mb_live,
        auto_step_ms_near_pipeline=near_pipeline_ms,
        baseline=baseline,
        latency=latency,
        live=live,
        flicker=flicker,
        breakdown_ms=breakdown_ms,
        step_cost=step_cost,
        dream_only_fps=dream_only_fps,
        peak=peak,
        step_ms_by_model=step_ms_by_model,
        output_vs_baseline=live.output_fps / baseline.baseline_fps,
        pipeline_efficiency=pipeline.pipeline_fps / dream_only_fps,
        speedup_vs_baseline=baseline.baseline_frame_ms / pipeline.frame_ms,
        peak_rss_mb=peak_rss_mb(),
        faces=faces,
        ladder=ladder,
        control_viewer=control_viewer,
        seconds=section.elapsed,
        targets_note=targets_note(settings),
    )
    machine.load_avg_end = load_avg()
    result.targets = targets(result)
    section("", "done")
    result.noise = noise_warnings(result, auto_result)
    print_report(console, result, variants)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    if "--deep" in (sys.argv[1:] if argv is None else argv):  # its own section, asked for only
        from deep_render import main as deep_main

        return deep_main(argv)
    try:
        settings = parse_args(argv)
    except SystemExit as exc:  # --help and bad usage exit from argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    console = Console()
    log = Console(stderr=True)
    quiet_libraries(False)
    import_tensorflow(False)
    try:
        results = run(settings, console, log)
        if settings.json_path is not None:
            write_json(settings.json_path, results)
            log.print(f"wrote {settings.json_path}", highlight=False)
    except LivedreamError as exc:
        log.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except OSError as exc:
        log.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
