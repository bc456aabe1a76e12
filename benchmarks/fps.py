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
3. pipeline: end-to-end output fps of ``Pipeline(..., live=False)`` over the clip into a null
   sink at the live defaults, and the per-frame dream time;
4. latency: capture-to-sink p50 and p95 in live mode from the clip paced at 30 fps;
5. flicker: ``temporal.flicker`` of the default dreamer against one with no carry (blend 0);
6. memory: the process's peak resident memory.

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
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from livedream.args import (
    HelpFormatter,
    OneLineParser,
    layers_arg,
    positive_int,
    size_arg,
)
from livedream.config import COMPILE_MODES, PRECISIONS, DreamConfig
from livedream.errors import LivedreamError, UsageError
from livedream.media import Frame
from livedream.models import MODELS, check_layers, get_spec
from livedream.runtime import import_tensorflow, quiet_libraries
from livedream.sources import Source, VideoFileSource

if TYPE_CHECKING:
    from livedream.dream import Device, Dreamer, DreamStep
    from livedream.models import FeatureModel
    from livedream.pipeline import Stats

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHARED_CLIP = Path(__file__).resolve().parents[1].parent / "shared/media/bikes.mp4"
BUNDLED_CLIP = Path(__file__).resolve().parents[1] / "livedream/data/sample.mp4"
BURN_IN_FRAMES = 3  # the first frames trace and compile the step: not timed
LIVE_PACE_FPS = 30.0  # a webcam's rate
FASTEST_TOLERANCE = 0.05  # auto counts as fastest within 5% of the best measured variant
# The targets were set for this configuration; other settings still get the table.
TARGET_CONFIG = ("vgg16_hed", (320, 240), 2)
# Sections whose numbers are timings of TensorFlow at work (model builds are single-threaded).
TIMED_SECTIONS = ("pipeline", "ceiling", "baseline", "latency", "flicker", "step timing")
VARIANT_PRECISIONS = tuple(p for p in PRECISIONS if p != "auto")
VARIANT_COMPILES = tuple(c for c in COMPILE_MODES if c != "auto")


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


@dataclass(frozen=True)
class Settings:
    """One benchmark run, from the flags."""

    model: str
    layers: tuple[str, ...]  # resolved: never empty
    dream_size: tuple[int, int]  # (w, h)
    steps: int
    clip: Path
    frames: int  # measured frames (after the burn-in) of each clip section
    quick: bool
    variants: tuple[tuple[str, str], ...] | None  # None: the default plan
    json_path: Path | None

    def dream_config(self, **changes: Any) -> DreamConfig:
        """The live defaults with this run's model, layers, size and steps."""
        config = DreamConfig(
            model=self.model, layers=self.layers, steps=self.steps, dream_size=self.dream_size
        )
        return replace(config, **changes)


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


# -- the machine ---------------------------------------------------------------------------------
def machine_info(device: Device) -> dict[str, Any]:
    """CPU model, cores, bf16 instructions, accelerator, library versions and the load."""
    import tensorflow as tf

    from livedream.dream import cpu_info

    name, flags = cpu_info()
    if name == "unknown CPU":
        name = platform.processor() or name
    return {
        "cpu": name,
        "cores": os.cpu_count() or 1,
        "cpu_bf16": sorted({"amx_bf16", "amx_tile", "avx512_bf16"} & flags),
        "accelerator": device.name if device.kind == "gpu" else "none (CPU)",
        "device": device.kind,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds() -> float:
    """User plus system CPU seconds this process used so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform.startswith("linux") else kb / 1024.0**2


# -- clip frames ---------------------------------------------------------------------------------
def read_frames(clip: Path, count: int) -> tuple[list[Frame], float]:
    """The first ``count`` frames of ``clip`` (fewer if it is shorter) and ms per decode."""
    frames: list[Frame] = []
    with VideoFileSource(clip) as source:
        started = time.perf_counter()
        while len(frames) < count and (frame := source.read()) is not None:
            frames.append(frame)
        elapsed = time.perf_counter() - started
    return frames, 1000.0 * elapsed / max(1, len(frames))


class LoopingClip(Source):
    """A video file played again and again as a live source, for latency runs of any length."""

    is_live = True

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} (looped)")
        self._path = path
        self._clip = VideoFileSource(path)
        self.width, self.height, self.fps = self._clip.width, self._clip.height, self._clip.fps

    def _read(self) -> Frame | None:
        frame = self._clip.read()
        if frame is None:
            self._clip.close()
            self._clip = VideoFileSource(self._path)
            frame = self._clip.read()
        return frame

    def _release(self) -> None:
        self._clip.close()


# -- 1. step cost --------------------------------------------------------------------------------
@dataclass
class VariantResult:
    """Timing of one precision/compile variant; ``ms`` empty when skipped."""

    precision: str
    compile: str
    ms: list[float]  # ms per step, one per timed call
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.precision}/{self.compile}"

    @property
    def best(self) -> float | None:
        return min(self.ms) if self.ms else None

    @property
    def median(self) -> float | None:
        return float(np.median(self.ms)) if self.ms else None


def variant_plan(
    settings: Settings, device: Device, auto: tuple[str, str]
) -> list[tuple[str, str, int, int, str]]:
    """(precision, compile, burn-in calls, timed calls, note) per variant; 0 timed = skipped.

    Graph mode is cheap to repeat; eager and XLA are slow on a CPU (XLA ~1.3 s a step on a
    2-vCPU EPYC), so they are timed a few times, and float16 has no fast CPU kernels at all.
    """
    wanted = settings.variants
    plan: list[tuple[str, str, int, int, str]] = []
    for precision in VARIANT_PRECISIONS:
        for compile_mode in VARIANT_COMPILES:
            is_auto = (precision, compile_mode) == auto
            chosen = wanted is None or (precision, compile_mode) in wanted
            if not chosen and not is_auto:
                continue
            cpu = device.kind == "cpu"
            slow_precision = cpu and (
                precision == "float16" or (precision == "bfloat16" and not device.bf16_fast)
            )
            burn_in = 2 if compile_mode == "graph" else 1
            if compile_mode == "graph":
                reps = 3 if settings.quick else 10
            else:
                reps = 1 if settings.quick else (3 if compile_mode == "eager" else 2)
            note = ""
            if wanted is None and cpu:
                if slow_precision:
                    if compile_mode == "graph" and not settings.quick:
                        burn_in, reps, note = 1, 1, "slow on CPU: timed once"
                    else:
                        reps, note = 0, "skipped: slow on CPU"
                elif settings.quick and compile_mode != "graph" and precision == "float32":
                    reps, note = 0, "skipped (--quick)"
            if is_auto and reps == 0:  # the ceiling and auto_is_fastest need it
                burn_in, reps, note = 1, 1, ""
            plan.append((precision, compile_mode, burn_in, reps, note))
    return plan


def time_variants(
    plan: Sequence[tuple[VariantResult, int, int]],
    settings: Settings,
    image: np.ndarray,
    section: Callable[[str, str], None],
) -> None:
    """Fills ``ms`` of each (variant, burn-in calls, timed calls) of ``plan``.

    Every variant is built and burnt in first; then the timed calls go round-robin, one call
    per variant a round, so a change in machine load hits all variants alike.
    """
    from livedream.dream import build_step

    steps: list[tuple[VariantResult, DreamStep, int]] = []
    for variant, burn_in, reps in plan:
        if reps == 0:
            continue
        section(f"build {variant.name}", f"build {variant.name}, {burn_in} burn-in calls")
        config = settings.dream_config(precision=variant.precision, compile=variant.compile)
        step = build_step(config)
        time_step(step, burn_in, 0, settings, image)
        steps.append((variant, step, reps))
    rounds = max((reps for _, _, reps in steps), default=0)
    section("step timing", f"timing: {rounds} rounds over {len(steps)} variants")
    for i in range(rounds):
        for variant, step, reps in steps:
            if i < reps:
                variant.ms += time_step(step, 0, 1, settings, image, seed=i)
    steps.clear()
    gc.collect()


def time_step(
    step: DreamStep,
    burn_in: int,
    reps: int,
    settings: Settings,
    image: np.ndarray,
    *,
    seed: int = 0,
) -> list[float]:
    """ms per step of a built step: ``reps`` calls of ``steps`` steps after ``burn_in`` calls.

    The step returns numpy, so each call's clock stops with the result on the host.
    """
    step_size = DreamConfig().step_size * 255.0
    for i in range(burn_in):
        step(image, steps=settings.steps, step_size=step_size, seed=(0, i))
    ms: list[float] = []
    for i in range(reps):
        started = time.perf_counter()
        step(image, steps=settings.steps, step_size=step_size, seed=(1 + seed, i))
        ms.append(1000.0 * (time.perf_counter() - started) / settings.steps)
    return ms


# -- 2. the tutorial's baseline ------------------------------------------------------------------
def tutorial_deepdream(features: FeatureModel) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """The TensorFlow DeepDream tutorial's ``DeepDream`` module, fed to our feature model.

    Images live in the tutorial's space: (H, W, 3) float32 in [-1, 1] (BGR here, since our
    model takes BGR); ``features`` wants BGR in [0, 255], hence ``(img + 1) * 127.5``.
    """
    import tensorflow as tf

    def model(img_batch: Any) -> list[Any]:
        return features.features((img_batch + 1.0) * 127.5)

    def calc_loss(img: Any, model: Callable[[Any], list[Any]]) -> Any:
        # Pass forward the image through the model to retrieve the activations.
        # Converts the image into a batch of size 1.
        img_batch = tf.expand_dims(img, axis=0)
        layer_activations = model(img_batch)  # always a list here: no single-tensor case
        losses = []
        for act in layer_activations:
            loss = tf.math.reduce_mean(act)
            losses.append(loss)
        return tf.reduce_sum(losses)

    class DeepDream(tf.Module):  # type: ignore[misc]  # tf is untyped
        def __init__(self, model: Callable[[Any], list[Any]]) -> None:
            self.model = model

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=(
                tf.TensorSpec(shape=[None, None, 3], dtype=tf.float32),
                tf.TensorSpec(shape=[], dtype=tf.int32),
                tf.TensorSpec(shape=[], dtype=tf.float32),
            )
        )
        def __call__(self, img: Any, steps: Any, step_size: Any) -> tuple[Any, Any]:
            loss = tf.constant(0.0)
            for _ in tf.range(steps):
                with tf.GradientTape() as tape:
                    # `GradientTape` only watches `tf.Variable`s by default.
                    tape.watch(img)
                    loss = calc_loss(img, self.model)
                gradients = tape.gradient(loss, img)
                gradients /= tf.math.reduce_std(gradients) + 1e-8
                img = img + gradients * step_size
                img = tf.clip_by_value(img, -1, 1)
            return loss, img

    return DeepDream(model)


def run_baseline(settings: Settings) -> dict[str, Any]:
    """The tutorial's way, frame by frame: read, resize, dream K steps, resize back, write."""
    import tensorflow as tf

    from livedream.models import load_model
    from livedream.sinks import NullSink

    deepdream = tutorial_deepdream(load_model(settings.model, settings.layers, dtype="float32"))
    # Same pixel move per unit-std gradient as livedream: the tutorial's range is 2 wide.
    step_size = DreamConfig().step_size * 2.0

    def run_deep_dream_simple(img: np.ndarray, steps: int) -> np.ndarray:
        img = img.astype(np.float32) / 127.5 - 1.0  # inception_v3.preprocess_input
        tensor = tf.convert_to_tensor(img)
        _loss, tensor = deepdream(tensor, tf.constant(steps), tf.constant(step_size))
        result = tf.cast(255 * (tensor + 1.0) / 2.0, tf.uint8)  # deprocess
        return result.numpy()  # type: ignore[no-any-return]

    wanted = BURN_IN_FRAMES + settings.frames
    cap = cv2.VideoCapture(str(settings.clip))
    frame_ms: list[float] = []
    dream_ms: list[float] = []
    try:
        with NullSink() as sink:
            while len(frame_ms) < wanted:
                started = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                small = cv2.resize(frame, settings.dream_size, interpolation=cv2.INTER_AREA)
                dream_started = time.perf_counter()
                dreamed = run_deep_dream_simple(small, settings.steps)
                dream_ms.append(1000.0 * (time.perf_counter() - dream_started))
                sink.write(cv2.resize(dreamed, (w, h), interpolation=cv2.INTER_LINEAR))
                frame_ms.append(1000.0 * (time.perf_counter() - started))
    finally:
        cap.release()
    timed = frame_ms[BURN_IN_FRAMES:]
    if not timed:
        raise UsageError(
            f"{settings.clip} has {len(frame_ms)} frames: need more than {BURN_IN_FRAMES}"
        )
    return {
        "baseline_frame_ms": float(np.mean(timed)),
        "baseline_dream_ms": float(np.mean(dream_ms[BURN_IN_FRAMES:])),
        "baseline_fps": 1000.0 / float(np.mean(timed)),
        "baseline_frames": len(timed),
    }


# -- 3 and 4. the pipeline -----------------------------------------------------------------------
@dataclass
class PipelineRun:
    output_times: list[float]  # perf_counter() when each output reached the sink
    stats: Stats
    timed_out: bool
    dreamer: Dreamer | None  # the pipeline's, once its thread ended


def run_pipeline(
    source: Source,
    config: DreamConfig,
    *,
    live: bool,
    outputs: int,
    pace_fps: float | None = None,
    max_frames: int | None = None,
) -> PipelineRun:
    """Runs the pipeline into a null sink until ``outputs`` frames came out or the input ended.

    In live mode the latencies and dream times of the first ``BURN_IN_FRAMES`` outputs are
    dropped from the stats (the model loads while the camera already delivers).
    """
    from livedream.dream import Dreamer
    from livedream.pipeline import Pipeline, Stats
    from livedream.sinks import NullSink

    def make_dreamer() -> Dreamer:
        return Dreamer(config)

    stats = Stats()
    times: list[float] = []
    # Generous: model build plus 10 s a frame; only a broken run gets near it.
    deadline = time.perf_counter() + 120.0 + 10.0 * outputs
    timed_out = False
    pipeline = Pipeline(
        source, make_dreamer, live=live, pace_fps=pace_fps, max_frames=max_frames, stats=stats
    )
    with pipeline, NullSink() as sink:
        while len(times) < outputs:
            if time.perf_counter() > deadline:
                timed_out = True
                break
            item = pipeline.next_frame(0.5)
            if item is None:
                if pipeline.ended:
                    break
                continue
            sink.write(item.image)
            times.append(time.perf_counter())
            if live and len(times) == BURN_IN_FRAMES:
                stats.latencies.clear()
                stats.dream_seconds.clear()
    if pipeline.error is not None:
        raise pipeline.error
    return PipelineRun(times, stats, timed_out, pipeline.dreamer)


def measure_pipeline(settings: Settings) -> tuple[dict[str, Any], DreamStep]:
    """File to null sink, losing nothing: output fps and per-frame dream time after a burn-in.

    Also returns the pipeline's compiled step, so the dream-only ceiling can be timed next to
    the pipeline run, under the same load.
    """
    wanted = BURN_IN_FRAMES + settings.frames
    run = run_pipeline(
        VideoFileSource(settings.clip),
        settings.dream_config(),
        live=False,
        outputs=wanted,
        max_frames=wanted,
    )
    times = run.output_times
    if len(times) < BURN_IN_FRAMES + 2:
        raise UsageError(
            f"{settings.clip} gave {len(times)} frames: need at least {BURN_IN_FRAMES + 2}"
        )
    span = times[-1] - times[BURN_IN_FRAMES]
    dream_s = list(run.stats.dream_seconds)[BURN_IN_FRAMES:]
    assert run.dreamer is not None  # frames came out, so the dreamer was built
    figures = {
        "pipeline_fps": (len(times) - 1 - BURN_IN_FRAMES) / span,
        # From the median gap between outputs: what the pipeline does when nothing else runs.
        "pipeline_fps_median": 1.0 / float(np.median(np.diff(times[BURN_IN_FRAMES:]))),
        "frame_ms": 1000.0 * float(np.mean(dream_s)),
        "frame_ms_p50": 1000.0 * float(np.median(dream_s)),
        "pipeline_frames": len(times) - BURN_IN_FRAMES,
        "pipeline_dropped": run.stats.dropped,
        "pipeline_timed_out": run.timed_out,
    }
    return figures, run.dreamer.step


def measure_latency(settings: Settings) -> dict[str, Any]:
    """Live mode from the clip paced like a 30 fps webcam: capture-to-sink latency."""
    run = run_pipeline(
        LoopingClip(settings.clip),
        settings.dream_config(),
        live=True,
        pace_fps=LIVE_PACE_FPS,
        outputs=BURN_IN_FRAMES + settings.frames,
    )
    times = run.output_times[BURN_IN_FRAMES - 1 :]
    live_fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "latency_ms_p50": run.stats.latency_ms(0.5),
        "latency_ms_p95": run.stats.latency_ms(0.95),
        "live_fps": live_fps,
        "live_frame_ms": 1000.0 * float(np.mean(run.stats.dream_seconds or [0.0])),
        "live_dropped": run.stats.dropped,
        "live_frames": len(run.stats.latencies),
    }


# -- 5. flicker, and where a frame's time goes -----------------------------------------------------
def measure_flicker(
    settings: Settings, frames: Sequence[Frame]
) -> tuple[dict[str, Any], DreamStep]:
    """The default dreamer against one without carry (blend 0), over the same frames."""
    from livedream.dream import Dreamer
    from livedream.temporal import flicker

    config = settings.dream_config()
    dreamer = Dreamer(config)
    plain = Dreamer(replace(config, blend=0.0), step=dreamer.step)
    started = time.perf_counter()
    outputs = [dreamer(frame) for frame in frames]
    dreamer_ms = 1000.0 * (time.perf_counter() - started) / len(frames)
    outputs_plain = [plain(frame) for frame in frames]
    carried = flicker(frames, outputs)
    uncarried = flicker(frames, outputs_plain)
    ratio = carried["flicker"] / uncarried["flicker"] if uncarried["flicker"] > 0 else float("nan")
    return {
        "flicker_ratio": ratio,
        "flicker_default": carried["flicker"],
        "flicker_blend0": uncarried["flicker"],
        "strength_default": carried["strength"],
        "strength_blend0": uncarried["strength"],
        "flicker_frames": len(frames),
        "dreamer_frame_ms": dreamer_ms,  # includes the first frame's trace
    }, dreamer.step


def measure_breakdown(
    settings: Settings, frames: Sequence[Frame], step: DreamStep, decode_ms: float
) -> dict[str, float]:
    """ms per frame of each stage of ``Dreamer.__call__`` (its own ``timings``) and the sink."""
    from livedream.dream import Dreamer
    from livedream.sinks import NullSink

    dreamer = Dreamer(settings.dream_config(), step=step)
    sink = NullSink()
    parts: dict[str, list[float]] = {}
    for i, frame in enumerate(frames[: 8 if settings.quick else 16]):
        image = dreamer(frame)
        started = time.perf_counter()
        sink.write(image)
        sink_ms = 1000.0 * (time.perf_counter() - started)
        if i == 0:
            continue  # no carry yet on the first frame
        for key, ms in {**dreamer.timings, "sink": sink_ms}.items():
            parts.setdefault(key, []).append(ms)
    result = {"decode": decode_ms}
    result.update({key: float(np.mean(values)) for key, values in parts.items()})
    return result


# -- targets and output --------------------------------------------------------------------------
def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the value, the target as text, the limit and whether it is met."""
    latency_limit = 2.5 * r["frame_ms"]
    return {
        "auto_is_fastest": {
            "value": r["auto_is_fastest"],
            "target": "true",
            "met": bool(r["auto_is_fastest"]),
        },
        "speedup_vs_baseline": {
            "value": r["speedup_vs_baseline"],
            "target": ">= 4",
            "met": r["speedup_vs_baseline"] >= 4.0,
        },
        "pipeline_efficiency": {
            "value": r["pipeline_efficiency"],
            "target": ">= 0.85",
            "met": r["pipeline_efficiency"] >= 0.85,
        },
        "pipeline_fps": {
            "value": r["pipeline_fps"],
            "target": ">= 8",
            "met": r["pipeline_fps"] >= 8.0,
        },
        "latency_ms_p95": {
            "value": r["latency_ms_p95"],
            "target": f"<= 2.5 x frame_ms = {latency_limit:.1f}",
            "met": r["latency_ms_p95"] <= latency_limit,
        },
        "flicker_ratio": {
            "value": r["flicker_ratio"],
            "target": "<= 0.6",
            "met": r["flicker_ratio"] <= 0.6,
        },
        "strength_default": {
            "value": r["strength_default"],
            "target": f">= strength_blend0 = {r['strength_blend0']:.2f}",
            "met": r["strength_default"] >= r["strength_blend0"],
        },
    }


def noise_warnings(r: dict[str, Any], auto: VariantResult) -> list[str]:
    """Signs that other jobs shared the machine, which makes the ratios unreliable."""
    warnings = []
    if auto.best is not None and auto.median is not None and auto.median > 1.15 * auto.best:
        warnings.append(
            f"{auto.name} median {auto.median:.0f} ms/step vs best {auto.best:.0f}: the step "
            "timings were disturbed"
        )
    if r["pipeline_efficiency"] > 1.0:
        warnings.append(
            f"pipeline_efficiency {r['pipeline_efficiency']:.2f} > 1: the step table ran under "
            "more load than the pipeline"
        )
    shares = {s["name"]: s["cpu_share"] for s in r["sections"] if s["name"] in TIMED_SECTIONS}
    top = max(shares.values(), default=0.0)
    slow = [name for name, share in shares.items() if share < 0.85 * top]
    if slow:
        warnings.append(
            f"these sections got under 85% of the best CPU share ({top:.2f}): {', '.join(slow)}"
        )
    if r["frame_ms"] > 1.1 * r["frame_ms_p50"]:
        warnings.append(
            f"pipeline frame_ms mean {r['frame_ms']:.0f} vs median {r['frame_ms_p50']:.0f}: "
            "some frames were slowed down"
        )
    return warnings


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def variant_table(results: list[VariantResult], auto: str, fastest: str, steps: int) -> Table:
    table = Table(title=f"ms per dream step ({steps} steps a call; fps = {steps} steps alone)")
    table.add_column("variant", no_wrap=True)
    for column in ("best", "median", "calls", "fps"):
        table.add_column(column, justify="right")
    table.add_column("note")
    for v in results:
        marks = [m for m, on in (("auto", v.name == auto), ("fastest", v.name == fastest)) if on]
        note = ", ".join([*marks, v.note] if v.note else marks)
        if v.best is None or v.median is None:
            table.add_row(v.name, "-", "-", "0", "-", note)
        else:
            fps = 1000.0 / (steps * v.best)
            table.add_row(
                v.name, f"{v.best:.1f}", f"{v.median:.1f}", str(len(v.ms)), f"{fps:.2f}", note
            )
    return table


def summary_table(r: dict[str, Any]) -> Table:
    table = Table(title="livedream vs the tutorial's way, and the targets")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("result")
    met = r["targets"]
    rows = [
        ("auto_variant", r["auto_variant"], ""),
        ("auto_is_fastest", r["auto_is_fastest"], "auto_is_fastest"),
        ("baseline_frame_ms", r["baseline_frame_ms"], ""),
        ("frame_ms", r["frame_ms"], ""),
        ("speedup_vs_baseline", r["speedup_vs_baseline"], "speedup_vs_baseline"),
        ("dream_only_fps", r["dream_only_fps"], ""),
        ("pipeline_fps", r["pipeline_fps"], "pipeline_fps"),
        ("pipeline_efficiency", r["pipeline_efficiency"], "pipeline_efficiency"),
        ("latency_ms_p50", r["latency_ms_p50"], ""),
        ("latency_ms_p95", r["latency_ms_p95"], "latency_ms_p95"),
        ("flicker_ratio", r["flicker_ratio"], "flicker_ratio"),
        ("strength_default", r["strength_default"], "strength_default"),
        ("strength_blend0", r["strength_blend0"], ""),
        ("peak_rss_mb_live", r["peak_rss_mb_live"], ""),
        ("peak_rss_mb", r["peak_rss_mb"], ""),
    ]
    for name, value, target in rows:
        if target:
            t = met[target]
            result = "[green]PASS[/]" if t["met"] else "[red]MISS[/]"
            table.add_row(name, _fmt(value), t["target"], result)
        else:
            table.add_row(name, _fmt(value), "", "")
    return table


def breakdown_table(parts: dict[str, float], frame_ms: float) -> Table:
    table = Table(title="where a frame's time goes (stages timed one by one)")
    table.add_column("stage")
    table.add_column("ms/frame", justify="right")
    table.add_column("share of frame_ms", justify="right")
    for key, value in parts.items():
        table.add_row(key, f"{value:.2f}", f"{100.0 * value / frame_ms:.1f}%")
    return table


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


# -- the run ---------------------------------------------------------------------------------------
def run(settings: Settings, console: Console, log: Console) -> dict[str, Any]:
    from livedream.dream import choose_variant, detect_device

    started = time.perf_counter()
    device = detect_device()
    auto = choose_variant("auto", "auto", device)
    auto_name = "/".join(auto)
    r: dict[str, Any] = {
        "machine": machine_info(device),
        "model": settings.model,
        "layers": list(settings.layers),
        "dream_size": list(settings.dream_size),
        "steps": settings.steps,
        "clip": str(settings.clip),
        "quick": settings.quick,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    console.print(
        f"[bold]{r['machine']['cpu']}[/], {r['machine']['cores']} cores, "
        f"accelerator: {r['machine']['accelerator']}; {settings.model} "
        f"({','.join(settings.layers)}) at {settings.dream_size[0]}x{settings.dream_size[1]}, "
        f"{settings.steps} steps; clip {settings.clip.name}; auto picks {auto_name}",
        highlight=False,
    )

    sections: list[dict[str, Any]] = []
    r["sections"] = sections

    def section(name: str, text: str) -> None:
        """Starts the section ``name`` ("" ends the last one) and says so on stderr."""
        now, cpu = time.perf_counter() - started, cpu_seconds()
        if sections:
            last = sections[-1]
            last["seconds"] = now - last["start_s"]
            # Share of the machine's cores this process got: ~1 when alone (TensorFlow keeps
            # every core busy), lower when other jobs ran beside it.
            last["cpu_share"] = (cpu - last.pop("_cpu")) / (last["seconds"] * (os.cpu_count() or 1))
        if name:
            sections.append(
                {"name": name, "start_s": now, "load_avg_1m": os.getloadavg()[0], "_cpu": cpu}
            )
        log.print(f"[dim]{now:6.1f} s[/]  {text}", highlight=False)

    image = cv2.resize(read_frames(settings.clip, 1)[0][0], settings.dream_size).astype(np.float32)
    burn_in, reps = 2, 3 if settings.quick else 10

    # The pipeline first, so that its memory peak is the live app's alone; the dream-only
    # ceiling and the baseline right after it, so that their ratios see the same machine load.
    section("pipeline", f"pipeline: {settings.frames} frames after {BURN_IN_FRAMES} burn-in")
    figures, step = measure_pipeline(settings)
    r.update(figures)
    r["peak_rss_mb_live"] = peak_rss_mb()
    section("ceiling", f"dream-only ceiling: the pipeline's step, {reps} timed calls")
    near = time_step(step, burn_in, reps, settings, image)
    r["auto_step_ms_near_pipeline"] = min(near)
    del step
    gc.collect()
    section("baseline", f"baseline: the tutorial's DeepDream, {settings.frames} frames, float32")
    r.update(run_baseline(settings))
    section(
        "latency", f"latency: {settings.frames} frames out, live, paced at {LIVE_PACE_FPS:g} fps"
    )
    r.update(measure_latency(settings))
    section("flicker", f"flicker: {settings.frames} frames, default dreamer vs blend 0")
    frames, decode_ms = read_frames(settings.clip, settings.frames)
    flicker_figures, step = measure_flicker(settings, frames)
    r.update(flicker_figures)
    section("breakdown", "breakdown: each stage of a frame timed one by one")
    r["breakdown_ms"] = measure_breakdown(settings, frames, step, decode_ms)
    del step, frames
    gc.collect()

    plan = [
        (VariantResult(precision, compile_mode, [], note), burn_in, reps)
        for precision, compile_mode, burn_in, reps, note in variant_plan(settings, device, auto)
    ]
    time_variants(plan, settings, image, section)
    results = [variant for variant, _, _ in plan]

    measured = [v for v in results if v.best is not None]
    fastest = min(measured, key=lambda v: v.best or float("inf"))
    auto_result = next(v for v in results if v.name == auto_name)
    assert auto_result.best is not None and fastest.best is not None  # auto is always timed
    r["step_ms"] = {v.name: v.best for v in measured}
    r["step_ms_median"] = {v.name: v.median for v in measured}
    r["step_skipped"] = {v.name: v.note for v in results if v.best is None}
    r["auto_variant"] = auto_name
    r["fastest_variant"] = fastest.name
    r["auto_is_fastest"] = auto_result.best <= fastest.best * (1.0 + FASTEST_TOLERANCE)
    # The best auto step seen, in the table or next to the pipeline: the ceiling of K steps.
    r["auto_step_ms"] = min(auto_result.best, r["auto_step_ms_near_pipeline"])
    r["dream_only_fps"] = 1000.0 / (settings.steps * r["auto_step_ms"])
    r["pipeline_efficiency"] = r["pipeline_fps"] / r["dream_only_fps"]
    r["speedup_vs_baseline"] = r["baseline_frame_ms"] / r["frame_ms"]
    r["peak_rss_mb"] = peak_rss_mb()
    r["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    r["seconds"] = time.perf_counter() - started
    r["targets"] = targets(r)
    if (settings.model, settings.dream_size, settings.steps) != TARGET_CONFIG:
        r["targets_note"] = "targets were set for vgg16_hed at 320x240 with 2 steps"
    section("", "done")
    r["noise"] = noise_warnings(r, auto_result)

    console.print(variant_table(results, auto_name, fastest.name, settings.steps))
    console.print(breakdown_table(r["breakdown_ms"], r["frame_ms"]))
    console.print(summary_table(r))
    if "targets_note" in r:
        console.print(f"note: {r['targets_note']}")
    for warning in r["noise"]:
        console.print(f"[yellow]noisy:[/] {warning}", highlight=False)
    console.print(
        f"pipeline {r['pipeline_fps']:.2f} fps ({r['frame_ms']:.1f} ms/frame dream), "
        f"baseline {r['baseline_fps']:.2f} fps ({r['baseline_frame_ms']:.1f} ms/frame), "
        f"{r['seconds']:.0f} s in all",
        highlight=False,
    )
    return r


def main(argv: Sequence[str] | None = None) -> int:
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
            settings.json_path.write_text(json.dumps(_rounded(results), indent=2) + "\n")
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
