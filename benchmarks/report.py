"""What ``fps.py`` makes of its figures: the targets, noise warnings, Rich tables and the JSON.

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ladder import LadderFigures
from result import BenchResult, Target, as_json
from settings import Settings
from step_cost import VariantResult

# The targets were set for this configuration; other settings still get the table.
TARGET_CONFIG = ("vgg16_hed", (320, 240), 2)
# Sections whose numbers are timings of TensorFlow at work (model builds are single-threaded).
TIMED_SECTIONS = ("pipeline", "ceiling", "baseline", "live", "flicker", "step timing", "peak")
# The summary table's rows, by JSON key; a row whose key has a target shows it.
SUMMARY_ROWS = (
    "auto_variant",
    "auto_is_fastest",
    "baseline_fps",
    "baseline_frame_ms",
    "frame_ms",
    "speedup_vs_baseline",
    "dream_only_fps",
    "pipeline_fps",
    "pipeline_efficiency",
    "source_fps",
    "output_fps",
    "output_vs_baseline",
    "undreamed_after_first_keyframe",
    "undreamed_outside_cuts",
    "dream_fps",
    "dream_efficiency_live",
    "latency_ms_p50",
    "latency_ms_p95",
    "compositor_ms_p50",
    "compositor_ms_p95",
    "dream_age_ms_p50",
    "dream_age_ms_p95",
    "flicker_ratio_live",
    "flicker_live_vs_carry",
    "strength_live",
    "strength_baseline",
    "strength_live_dreamed",
    "step_peak_ratio",
    "flicker_ratio",
    "strength_default",
    "strength_blend0",
    "peak_rss_mb_live",
    "peak_rss_mb",
    "face_ms",
    "face_share_of_dream",
    "face_share_of_dream_small",
    "face_hit_rate_turn",
    "face_hit_rate_tilt",
    "face_hit_rate_moved",
    "face_tracked_rate",
    "dream_rate_target",
    "auto_dream_size",
    "auto_dream_size_still",
    "dream_fps_auto",
    "dream_only_fps_auto",
    "strength_live_auto",
    "flicker_ratio_live_auto",
    "compositor_ms_p95_auto",
    "undreamed_outside_cuts_auto",
    "output_fps_min_1s_auto",
    "auto_vs_best_rung",
)


# -- targets and noise ---------------------------------------------------------------------------
def targets(r: BenchResult) -> dict[str, Target]:
    """Each target by its figure's name: the value, the target as text, whether it is met.

    Every bound is a ratio of figures of this one run. ``speedup_vs_baseline``,
    ``pipeline_fps`` and the old latency bound were retired with issue 9 (still reported).
    """
    steps, flicker, live = r.step_cost, r.flicker, r.live
    frame_ms = 1000.0 / live.source_fps  # the camera's frame interval
    keyframe_ms = 1000.0 / live.dream_fps if live.dream_fps > 0 else float("inf")
    age_limit = 2.0 * keyframe_ms + 2.0 * frame_ms
    p95 = r.latency.latency_ms_p95
    slow_baseline = r.baseline.baseline_fps < 3.0

    def at_least(value: float, limit: float, text: str) -> Target:
        return Target(value, f">= {text} = {limit:.3g}", bool(value >= limit))

    def at_most(value: float, limit: float, text: str) -> Target:
        return Target(value, f"<= {text} = {limit:.3g}", bool(value <= limit))

    return {
        **ladder_targets(r.ladder, live.dream_fps, frame_ms, live.source_fps, live.strength_live),
        "face_share_of_dream": Target(
            r.faces.face_share_of_dream, "<= 0.1", r.faces.face_share_of_dream <= 0.1
        ),
        "face_share_of_dream_small": Target(
            r.faces.face_share_of_dream_small, "<= 0.1", r.faces.face_share_of_dream_small <= 0.1
        ),
        "auto_is_fastest": Target(steps.auto_is_fastest, "true", bool(steps.auto_is_fastest)),
        "pipeline_efficiency": Target(
            r.pipeline_efficiency, ">= 0.85", r.pipeline_efficiency >= 0.85
        ),
        "output_fps": at_least(live.output_fps, 0.95 * live.source_fps, "0.95 x source_fps"),
        "undreamed_outside_cuts": Target(
            live.undreamed_outside_cuts, "== 0", live.undreamed_outside_cuts == 0
        ),
        "output_vs_baseline": Target(
            r.output_vs_baseline,
            ">= 10 (baseline_fps < 3)" if slow_baseline else "none: baseline_fps >= 3",
            r.output_vs_baseline >= 10.0 or not slow_baseline,
        ),
        "latency_ms_p95": at_most(p95, 2.0 * frame_ms, "2 x 1000/source_fps"),
        "dream_age_ms_p95": at_most(
            live.dream_age_ms_p95, age_limit, "2 x 1000/dream_fps + 2 x 1000/source_fps"
        ),
        "flicker_ratio_live": Target(
            live.flicker_ratio_live, "<= 0.6", bool(live.flicker_ratio_live <= 0.6)
        ),
        "flicker_live_vs_carry": Target(
            live.flicker_live_vs_carry, "<= 1.25", bool(live.flicker_live_vs_carry <= 1.25)
        ),
        "strength_live": at_least(
            live.strength_live, 0.75 * live.strength_baseline, "0.75 x strength_baseline"
        ),
        "step_peak_ratio": Target(
            r.peak.step_peak_ratio, ">= 0.7", bool(r.peak.step_peak_ratio >= 0.7)
        ),
        "output_fps_viewer": at_least(
            r.control_viewer.output_fps_viewer,
            0.95 * r.control_viewer.camera_fps,
            "0.95 x the camera's fps",
        ),
        "dream_fps_viewer": at_least(
            r.control_viewer.dream_fps_viewer,
            0.9 * r.control_viewer.dream_fps_no_viewer,
            "0.9 x dream_fps_no_viewer",
        ),
        "flicker_ratio": Target(flicker.flicker_ratio, "<= 0.6", flicker.flicker_ratio <= 0.6),
        "strength_default": Target(
            flicker.strength_default,
            f">= strength_blend0 = {flicker.strength_blend0:.2f}",
            flicker.strength_default >= flicker.strength_blend0,
        ),
    }


def ladder_targets(
    ladder: LadderFigures,
    fixed_dream_fps: float,
    frame_ms: float,
    source_fps: float,
    fixed_strength: float,
) -> dict[str, Target]:
    """Issue 17: the automatic dream size against the best fixed rung and the fixed default.

    The dream's fps is judged against the steps alone at the size chosen (timed right after,
    same load), and the compositor at that size; a clip's cuts rightly leave raw frames.
    """
    a = ladder
    target = a.dream_rate_target
    smallest = min(a.ladder, key=lambda rung: rung.size[0] * rung.size[1])
    out = {
        "auto_vs_best_rung": Target(a.auto_vs_best_rung, ">= 0.8", a.auto_vs_best_rung >= 0.8),
        "dream_fps_auto": Target(
            a.dream_fps_auto,
            f">= 0.8 x dream_only_fps_auto = {0.8 * a.dream_only_fps_auto:.3g}",
            a.dream_fps_auto >= 0.8 * a.dream_only_fps_auto,
        ),
        "output_fps_min_1s_auto": Target(
            a.output_fps_min_1s_auto,
            f">= 0.95 x source_fps = {0.95 * source_fps:.3g}",
            a.output_fps_min_1s_auto >= 0.95 * source_fps,
        ),
        "compositor_ms_p95_auto": Target(
            a.compositor_ms_p95_auto,
            f"<= 1000 / (3 x source_fps) = {frame_ms / 3.0:.3g}",
            a.compositor_ms_p95_auto <= frame_ms / 3.0,
        ),
        "flicker_ratio_live_auto": Target(
            a.flicker_ratio_live_auto, "<= 0.6", a.flicker_ratio_live_auto <= 0.6
        ),
        "undreamed_outside_cuts_auto": Target(
            a.undreamed_outside_cuts_auto, "== 0", a.undreamed_outside_cuts_auto == 0
        ),
        "auto_dream_size_still": Target(
            min(a.auto_dream_size_still),
            f">= the clip's short side {min(a.auto_dream_size)}",
            min(a.auto_dream_size_still) >= min(a.auto_dream_size),
        ),
    }
    if smallest.dream_only_fps >= target:
        out["dream_fps_auto_vs_target"] = Target(
            a.dream_fps_auto,
            f">= 0.8 x dream_rate_target = {0.8 * target:.3g}",
            a.dream_fps_auto >= 0.8 * target,
        )
    if fixed_dream_fps < 3.0:
        out["strength_live_auto"] = Target(
            a.strength_live_auto,
            f">= 5 x the fixed default's strength_live = {5 * fixed_strength:.3g}",
            a.strength_live_auto >= 5.0 * fixed_strength,
        )
    elif fixed_dream_fps >= target:
        out["auto_dream_short_side"] = Target(
            min(a.auto_dream_size),
            ">= 240 (the default keeps up here)",
            min(a.auto_dream_size) >= 240,
        )
    return out


def ladder_table(ladder: LadderFigures) -> Table:
    """The rungs and the automatic size, one row each."""
    table = Table(title="the dream size: fixed rungs and the automatic one, live at 30 fps")
    for column in ("size x steps", "dream fps", "steps alone", "strength live", "fresh", "flicker"):
        table.add_column(column, justify="right")
    for i, rung in enumerate(ladder.ladder):
        mark = " (best)" if i == ladder.best_rung else ""
        table.add_row(
            f"{rung.size[0]}x{rung.size[1]} x {rung.steps}{mark}",
            f"{rung.dream_fps:.2f}",
            f"{rung.dream_only_fps:.2f}",
            f"{rung.strength_live:.2f}",
            f"{rung.strength_fresh:.2f}",
            f"{rung.flicker_ratio_live:.2f}",
        )
    w, h = ladder.auto_dream_size
    table.add_row(
        f"auto ({ladder.dream_rate_target:g}/s): {w}x{h}",
        f"{ladder.dream_fps_auto:.2f}",
        f"{ladder.dream_only_fps_auto:.2f}",
        f"{ladder.strength_live_auto:.2f}",
        f"{ladder.strength_fresh_auto:.2f}",
        f"{ladder.flicker_ratio_live_auto:.2f}",
    )
    return table


def targets_note(settings: Settings) -> str | None:
    """Why the targets may not apply to this run's settings; None when they were set for it."""
    if (settings.model, settings.dream_size, settings.steps) == TARGET_CONFIG:
        return None
    return "targets were set for vgg16_hed at 320x240 with 2 steps"


def noise_warnings(r: BenchResult, auto: VariantResult) -> list[str]:
    """Signs that other jobs shared the machine, which makes the ratios unreliable."""
    warnings = []
    if auto.best is not None and auto.median is not None and auto.median > 1.15 * auto.best:
        warnings.append(
            f"{auto.name} median {auto.median:.0f} ms/step vs best {auto.best:.0f}: the step "
            "timings were disturbed"
        )
    if r.pipeline_efficiency > 1.0:
        warnings.append(
            f"pipeline_efficiency {r.pipeline_efficiency:.2f} > 1: the step table ran under "
            "more load than the pipeline"
        )
    shares = {s.name: s.cpu_share for s in r.sections if s.name in TIMED_SECTIONS}
    top = max(shares.values(), default=0.0)
    slow = [name for name, share in shares.items() if share < 0.85 * top]
    if slow:
        warnings.append(
            f"these sections got under 85% of the best CPU share ({top:.2f}): {', '.join(slow)}"
        )
    frame_ms, frame_ms_p50 = r.pipeline.frame_ms, r.pipeline.frame_ms_p50
    if frame_ms > 1.1 * frame_ms_p50:
        warnings.append(
            f"pipeline frame_ms mean {frame_ms:.0f} vs median {frame_ms_p50:.0f}: "
            "some frames were slowed down"
        )
    return warnings


# -- tables --------------------------------------------------------------------------------------
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


def summary_table(r: BenchResult) -> Table:
    table = Table(title="livedream vs the tutorial's way, and the targets")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("result")
    values = as_json(r)
    for name in SUMMARY_ROWS:
        if (target := r.targets.get(name)) is not None:
            result = "[green]PASS[/]" if target.met else "[red]MISS[/]"
            table.add_row(name, _fmt(values[name]), target.target, result)
        else:
            table.add_row(name, _fmt(values[name]), "", "")
    for name, target in r.targets.items():  # targets on a figure of their own name
        if name not in SUMMARY_ROWS:
            result = "[green]PASS[/]" if target.met else "[red]MISS[/]"
            table.add_row(name, _fmt(target.value), target.target, result)
    return table


def breakdown_table(parts: dict[str, float], frame_ms: float) -> Table:
    table = Table(title="where a frame's time goes (stages timed one by one)")
    table.add_column("stage")
    table.add_column("ms/frame", justify="right")
    table.add_column("share of frame_ms", justify="right")
    for key, value in parts.items():
        table.add_row(key, f"{value:.2f}", f"{100.0 * value / frame_ms:.1f}%")
    return table


def live_table(r: BenchResult) -> Table:
    live, latency, peak = r.live, r.latency, r.peak
    table = Table(title=f"live: the clip as a {live.source_fps:g} fps camera")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = (
        (
            "frames out / keyframes / dream skips",
            f"{live.live_output_frames} / {live.live_keyframes} / {live.live_skipped}",
        ),
        (
            "scene cuts / undreamed: after cuts, other",
            f"{live.cuts} / {live.undreamed_after_cuts}, {live.undreamed_outside_cuts}",
        ),
        (
            "fps: capture / output / dream / K steps alone just after",
            f"{live.capture_fps:.1f} / {live.output_fps:.1f} / {live.dream_fps:.2f} / "
            f"{live.dream_only_fps_near_live:.2f}",
        ),
        ("ms p50 / p95: latency", f"{latency.latency_ms_p50:.1f} / {latency.latency_ms_p95:.1f}"),
        (
            "ms p50 / p95: compositor",
            f"{live.compositor_ms_p50:.1f} / {live.compositor_ms_p95:.1f}",
        ),
        ("ms p50 / p95: dream age", f"{live.dream_age_ms_p50:.0f} / {live.dream_age_ms_p95:.0f}"),
        ("ms per keyframe (mean)", f"{latency.live_frame_ms:.0f}"),
        (
            "flicker: live / fresh / carry",
            f"{live.flicker_live:.3f} / {live.flicker_fresh:.3f} "
            f"/ {live.flicker_carry:.3f} ({live.flicker_live_frames} frames)",
        ),
        (
            "strength: live (dreamed frames) / fresh / carry",
            f"{live.strength_live:.2f} ({live.strength_live_dreamed:.2f}) / "
            f"{live.strength_baseline:.2f} / {live.strength_carry:.2f}",
        ),
        (
            "control page: output / dream fps, no viewer -> viewer (pictures/s)",
            f"{r.control_viewer.output_fps_no_viewer:.1f} / "
            f"{r.control_viewer.dream_fps_no_viewer:.2f} -> "
            f"{r.control_viewer.output_fps_viewer:.1f} / {r.control_viewer.dream_fps_viewer:.2f} "
            f"({r.control_viewer.live_view_fps:.1f})",
        ),
        (
            "GFLOP/s: step / best conv alone",
            f"{peak.step_gflops:.0f} / "
            f"{peak.conv_peak_gflops:.0f} ({peak.conv_peak_layer}; {peak.step_gflop:.1f} GFLOP)",
        ),
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


def print_report(console: Console, r: BenchResult, variants: list[VariantResult]) -> None:
    """The step table, the breakdown, the live run, the summary against the targets, notes and
    warnings."""
    steps = r.step_cost
    console.print(variant_table(variants, steps.auto_variant, steps.fastest_variant, r.steps))
    console.print(breakdown_table(r.breakdown_ms, r.pipeline.frame_ms))
    console.print(live_table(r))
    console.print(ladder_table(r.ladder))
    console.print(summary_table(r))
    if r.targets_note is not None:
        console.print(f"note: {r.targets_note}")
    for warning in r.noise:
        console.print(f"[yellow]noisy:[/] {warning}", highlight=False)
    per_model = ", ".join(f"{name} {ms:.1f} ms" for name, ms in r.step_ms_by_model.items())
    console.print(f"one step at 320x240 per model (auto precision): {per_model}", highlight=False)
    console.print(
        f"pipeline {r.pipeline.pipeline_fps:.2f} fps ({r.pipeline.frame_ms:.1f} ms/frame dream), "
        f"baseline {r.baseline.baseline_fps:.2f} fps "
        f"({r.baseline.baseline_frame_ms:.1f} ms/frame), {r.seconds:.0f} s in all",
        highlight=False,
    )


# -- JSON ----------------------------------------------------------------------------------------
def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def write_json(path: Path, r: BenchResult) -> None:
    """Every figure of ``r`` to ``path``, floats rounded to 4 places, NaN and inf as null."""
    path.write_text(json.dumps(_rounded(as_json(r)), indent=2) + "\n")
