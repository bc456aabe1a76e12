"""The typed result of a ``fps.py`` run: its field names are the keys ``--json`` writes.

Each section's figures are a dataclass of their own module (``PipelineFigures`` in
``pipeline_run.py``, ...), held by ``BenchResult`` in a field marked ``FLAT``: their fields go
to the top level of the JSON. Any other field is a key of its own; a dataclass there (the
machine, each section's timing, each target) is written as a nested object. A new section adds
its figures dataclass, one ``FLAT`` field here, and its rows and targets in ``report.py``.
Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from baseline import BaselineFigures
from control import ControlFigures
from conv_peak import PeakFigures
from faces import FaceFigures
from ladder import LadderFigures
from live import LiveFigures
from machine import MachineInfo, Section
from pipeline_run import FlickerFigures, LatencyFigures, PipelineFigures
from step_cost import StepFigures

FLAT = {"flat": True}  # metadata: write this dataclass's fields at the top level
OMIT_NONE = {"omit_none": True}  # metadata: no key at all while the value is None


@dataclass
class Target:
    """One target: the figure's value, the target as text, and whether it is met."""

    value: float | bool
    target: str
    met: bool


@dataclass
class BenchResult:
    """Every figure of one run, in the order the JSON lists them."""

    machine: MachineInfo
    model: str
    layers: list[str]
    dream_size: list[int]  # (w, h)
    steps: int
    clip: str
    quick: bool
    timestamp: str  # UTC, ISO 8601, when the run started
    sections: list[Section]
    pipeline: PipelineFigures = field(metadata=FLAT)
    peak_rss_mb_live: float  # right after the pipeline: the live app's own peak
    auto_step_ms_near_pipeline: float  # the pipeline's step timed right after it
    baseline: BaselineFigures = field(metadata=FLAT)
    latency: LatencyFigures = field(metadata=FLAT)  # from the live run
    live: LiveFigures = field(metadata=FLAT)
    flicker: FlickerFigures = field(metadata=FLAT)
    breakdown_ms: dict[str, float]  # ms per frame of each stage, timed one by one
    step_cost: StepFigures = field(metadata=FLAT)
    dream_only_fps: float  # 1000 / (K x auto_step_ms): what K compiled steps alone allow
    peak: PeakFigures = field(metadata=FLAT)
    # median ms of one step at 320x240, auto precision: vgg16_hed on block4_conv3, inception_v3
    # on mixed3,mixed5 (random weights: the same cost), interleaved rounds (model_cost.py)
    step_ms_by_model: dict[str, float]
    output_vs_baseline: float  # the live run's output_fps / baseline_fps
    pipeline_efficiency: float  # pipeline_fps / dream_only_fps
    speedup_vs_baseline: float  # baseline_frame_ms / frame_ms
    peak_rss_mb: float  # the whole run's, every variant included
    faces: FaceFigures = field(metadata=FLAT)
    ladder: LadderFigures = field(metadata=FLAT)  # issue 17: fixed sizes vs the automatic one
    control_viewer: ControlFigures  # issue 19: output and dream fps with a viewer and without
    seconds: float  # the whole run
    targets: dict[str, Target] = field(default_factory=dict)  # keyed by the figure's name
    targets_note: str | None = field(default=None, metadata=OMIT_NONE)
    noise: list[str] = field(default_factory=list)  # signs that other jobs shared the machine


def as_json(result: Any) -> dict[str, Any]:
    """The fields of the dataclass ``result`` as plain JSON values, ``FLAT`` ones merged in.

    Raises:
        ValueError: two fields would write the same key.
    """
    out: dict[str, Any] = {}
    for f in fields(result):
        value = getattr(result, f.name)
        if f.metadata.get("omit_none") and value is None:
            continue
        items = as_json(value) if f.metadata.get("flat") else {f.name: _plain(value)}
        if clash := out.keys() & items.keys():
            raise ValueError(f"expected unique JSON keys, got {sorted(clash)} twice")
        out.update(items)
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return as_json(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
