"""Section 1 of ``fps.py``: ms per dream step of each precision x compile variant.

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from livedream.config import COMPILE_MODES, PRECISIONS, DreamConfig
from settings import Settings

if TYPE_CHECKING:
    from livedream.dream import Device, DreamStep

VARIANT_PRECISIONS = tuple(p for p in PRECISIONS if p != "auto")
VARIANT_COMPILES = tuple(c for c in COMPILE_MODES if c != "auto")
FASTEST_TOLERANCE = 0.05  # auto counts as fastest within 5% of the best measured variant


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


@dataclass
class StepFigures:
    """The step table's figures, as they go in the JSON (keyed by ``VariantResult.name``)."""

    step_ms: dict[str, float]  # best ms per step of each timed variant
    step_ms_median: dict[str, float]
    step_skipped: dict[str, str]  # why each untimed variant was not timed
    auto_variant: str  # what choose_variant("auto", "auto", ...) picks
    fastest_variant: str
    auto_is_fastest: bool  # within FASTEST_TOLERANCE of the fastest
    # The best auto step seen, in the table or next to the pipeline: the ceiling of K steps.
    auto_step_ms: float


def step_figures(
    results: Sequence[VariantResult], auto_name: str, near_pipeline_ms: float
) -> tuple[StepFigures, VariantResult]:
    """The figures of timed ``results``, and the auto variant's own result.

    Args:
        near_pipeline_ms: the best auto step timed right after the pipeline run.
    """
    measured = [v for v in results if v.best is not None]
    fastest = min(measured, key=lambda v: v.best or float("inf"))
    auto = next(v for v in results if v.name == auto_name)
    assert auto.best is not None and fastest.best is not None  # auto is always timed
    figures = StepFigures(
        step_ms={v.name: v.best for v in measured if v.best is not None},
        step_ms_median={v.name: v.median for v in measured if v.median is not None},
        step_skipped={v.name: v.note for v in results if v.best is None},
        auto_variant=auto_name,
        fastest_variant=fastest.name,
        auto_is_fastest=auto.best <= fastest.best * (1.0 + FASTEST_TOLERANCE),
        auto_step_ms=min(auto.best, near_pipeline_ms),
    )
    return figures, auto


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
    from livedream.resolve import resolve_here

    steps: list[tuple[VariantResult, DreamStep, int]] = []
    for variant, burn_in, reps in plan:
        if reps == 0:
            continue
        section(f"build {variant.name}", f"build {variant.name}, {burn_in} burn-in calls")
        config = settings.dream_config(precision=variant.precision, compile=variant.compile)
        step = build_step(resolve_here(config))
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
