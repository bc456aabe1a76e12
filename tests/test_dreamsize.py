"""The dream size that follows the machine: the ladder of sizes and the governor climbing it,
driven by a simulated machine (keyframe cost proportional to pixels) and an injected clock."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import SHARED_DREAM

from livedream.controls import Controls
from livedream.dream import Dreamer, DreamStep
from livedream.dreamsize import HYSTERESIS, SETTLE, DreamSizer, SizeGovernor, area, size_ladder
from livedream.resolve import resolve_here


def test_ladder_keeps_aspect_even_sides_and_ends_at_the_frame() -> None:
    ladder = size_ladder(640, 480, smallest=96)
    assert ladder[0] == (128, 96)
    assert ladder[-1] == (640, 480)
    for w, h in ladder:
        assert w % 2 == 0 and h % 2 == 0
        assert abs(w / h - 640 / 480) < 0.03
    steps = [min(b) / min(a) for a, b in itertools.pairwise(ladder)]
    assert all(1.1 <= s <= 1.4 for s in steps), steps


def test_ladder_respects_its_smallest_and_largest() -> None:
    ladder = size_ladder(1920, 1080, smallest=120, largest=480)
    assert min(ladder[0]) == 120
    assert min(ladder[-1]) == 480
    # A frame below the smallest rung is dreamed at its own size only.
    assert size_ladder(80, 60, smallest=96) == ((80, 60),)


class Machine:
    """A dream whose keyframe costs ``per_pixel`` seconds a pixel (plus a trace per new size)."""

    def __init__(self, per_pixel: float) -> None:
        self.per_pixel = per_pixel
        self.now = 0.0
        self.traced: set[tuple[int, int]] = set()

    def run(self, governor: SizeGovernor, keyframes: int) -> list[tuple[int, int]]:
        sizes = []
        traced = self.traced
        for _ in range(keyframes):
            size = governor.size
            seconds = self.per_pixel * area(size)
            if size not in traced:
                traced.add(size)
                seconds += 2.0  # the trace: paid once per size
            self.now += seconds
            sizes.append(size)
            governor.observe(seconds, self.now)
        return sizes


LADDER = size_ladder(640, 480, smallest=96)


@pytest.mark.parametrize("rate_at_320", [1.7, 3.5, 6.3, 12.0])
def test_governor_settles_on_the_largest_size_that_holds_the_target(rate_at_320: float) -> None:
    machine = Machine(per_pixel=1.0 / (rate_at_320 * 320 * 240))
    governor = SizeGovernor(LADDER, target_hz=6.0, start=3)
    sizes = machine.run(governor, 120)
    settled = sizes[-1]
    assert_in_band(machine, governor)
    # Settled means settled: the last 40 keyframes never change size.
    assert set(sizes[-40:]) == {settled}


def assert_in_band(machine: Machine, governor: SizeGovernor) -> None:
    """The size holds the target (within the hysteresis below it), and the next size up would
    not hold it: the largest size that keeps up, no needless shrink."""
    rate = 1.0 / (machine.per_pixel * area(governor.size))
    target = governor.target_hz
    if governor.rung > 0:
        assert rate >= target * (1 - HYSTERESIS), (governor.size, rate)
    if governor.rung + 1 < len(LADDER):
        rate_up = 1.0 / (machine.per_pixel * area(LADDER[governor.rung + 1]))
        assert rate_up < target, (governor.size, rate_up)


def test_a_slower_machine_midway_steps_the_size_down_and_back_up() -> None:
    machine = Machine(per_pixel=1.0 / (6.3 * 320 * 240))
    governor = SizeGovernor(LADDER, target_hz=6.0, start=0)
    machine.run(governor, 60)
    fast_size = governor.size
    machine.per_pixel *= 3.0  # another program takes the cores
    machine.run(governor, 60)
    loaded_size = governor.size
    assert area(loaded_size) < area(fast_size)
    machine.per_pixel /= 3.0
    machine.now += 60.0  # long enough for a retry of the larger sizes
    machine.run(governor, 80)
    assert area(governor.size) >= area(fast_size) / 1.6  # at most one rung apart
    assert_in_band(machine, governor)


def test_hysteresis_no_oscillation_at_the_edge() -> None:
    # A rung that holds the target by a hair: the governor neither leaves it nor probes the next
    # rung over and over.
    target = 6.0
    rung = 4
    per_pixel = 1.0 / (target * 1.02 * area(LADDER[rung]))
    machine = Machine(per_pixel)
    governor = SizeGovernor(LADDER, target_hz=target, start=rung)
    machine.run(governor, 200)
    assert governor.size == LADDER[rung]
    assert governor.changes == 0


def test_first_keyframe_at_a_new_size_is_not_measured() -> None:
    governor = SizeGovernor(LADDER, target_hz=6.0, start=2)
    # A trace of 30 s must not push the size down: it is not the size's running cost.
    governor.observe(30.0, 30.0)
    for i in range(SETTLE):
        governor.observe(0.1, 31.0 + i)
    assert governor.rung >= 2


def test_retarget_moves_the_size() -> None:
    machine = Machine(per_pixel=1.0 / (6.0 * 320 * 240))
    governor = SizeGovernor(LADDER, target_hz=6.0, start=0)
    machine.run(governor, 60)
    at_six = governor.size
    governor.retarget(2.0)
    machine.run(governor, 60)
    assert area(governor.size) > area(at_six)
    with pytest.raises(ValueError, match="above 0"):
        governor.retarget(0.0)


def test_the_carried_dream_survives_a_size_change() -> None:
    from livedream.temporal import FlowCarry

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (120, 160), np.uint8)
    big = np.asarray(np.repeat(np.repeat(big[::4, ::4], 4, 0), 4, 1), np.uint8)  # blocky texture
    residual = np.zeros((120, 160, 3), np.float32)
    residual[30:90, 40:120] = 20.0  # a dreamed patch in the middle
    carry = FlowCarry()
    carry.update(big, residual)
    small = cv2.resize(big, (80, 60), interpolation=cv2.INTER_AREA)
    carried = carry.carry(small, blend=1.0)
    assert carried is not None and carried.shape == (60, 80, 3)
    # The patch is where it was, at the new size, and as strong.
    assert carried[25:35, 30:50].mean() > 15.0
    assert carried[:5, :5].mean() < 2.0


# --- the real dream: the size follows what its keyframes cost ---------------------------------


class SlowMachine:
    """A clock that a wrapped step moves on by ``per_pixel`` seconds a pixel it dreams: a
    machine of known speed around the real step, whatever the host's own speed."""

    def __init__(self, step: DreamStep, per_pixel: float) -> None:
        self.step, self.per_pixel, self.now = step, per_pixel, 0.0
        self.sizes: list[tuple[int, int]] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, image: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, float]:
        out = self.step(image, **kwargs)
        h, w = image.shape[:2]
        self.sizes.append((w, h))
        self.now += self.per_pixel * w * h
        return out

    def __getattr__(self, name: str) -> Any:  # model, traces...: the real step's
        return getattr(self.step, name)


def moving_scene(i: int) -> np.ndarray:
    """A 96x72 textured scene panning right a pixel a frame."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    big = cv2.resize(base, (128, 80), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[4:76, i : i + 96])


def auto_dreamer(machine: SlowMachine, rate: float = 6.0) -> Dreamer:
    """A dreamer whose size follows ``machine``, on a ladder of small sizes (short sides 24 to
    72 for the 96x72 scene: the real step stays cheap, whatever the host)."""
    dream = resolve_here(replace(SHARED_DREAM, dream_size=None, auto_size=True, dream_rate=rate))
    dreamer = Dreamer(dream, step=machine, clock=machine.clock)  # type: ignore[arg-type]
    dreamer.sizer = DreamSizer(dream.size, smallest=24)
    return dreamer


def test_auto_size_settles_where_the_machine_keeps_up_and_keeps_the_dream(
    shared_step: DreamStep,
) -> None:
    # A machine that dreams 6.5 keyframes a second at the ladder's 4th size: every size above is
    # too slow for the target of 6.
    fits = size_ladder(96, 72, smallest=24)[3]
    machine = SlowMachine(shared_step, per_pixel=1.0 / (6.5 * area(fits)))
    traces = shared_step.traces
    dreamer = auto_dreamer(machine)
    assert machine.sizes == []
    strengths = []
    for i in range(24):
        frame = moving_scene(i)
        out = dreamer(frame)
        strengths.append(float(np.abs(out.astype(np.float32) - frame).mean()))
    assert machine.sizes[0] != fits  # it started elsewhere and found its size
    assert set(machine.sizes[-8:]) == {fits}  # settled
    # Each size was compiled once at most, never per frame.
    assert shared_step.traces - traces <= len(set(machine.sizes))
    # The carried dream survived the size changes: it deepens instead of starting over.
    assert strengths[-1] > strengths[0]


def test_a_size_picked_live_wins_and_auto_comes_back(shared_step: DreamStep) -> None:
    machine = SlowMachine(shared_step, per_pixel=1e-9)  # fast: climbs to the top
    dreamer = auto_dreamer(machine)
    controls = Controls.from_dream(dreamer.dream)
    assert controls.auto_size
    controls.dream_size, controls.auto_size = (40, 30), False  # picked on the page
    dreamer.apply(controls)
    dreamer(moving_scene(0))
    assert machine.sizes[-1] == (40, 30)
    controls.dream_size, controls.auto_size = None, True
    dreamer.apply(controls)
    for i in range(8):
        dreamer(moving_scene(i))
    assert machine.sizes[-1] == (96, 72)  # the frame's own size: nothing holds it back


def test_a_still_picture_dreams_larger_than_a_moving_one() -> None:
    # The same machine: a picture that hardly moves keeps its dream however old, so the size
    # may trade refreshes for pixels; a moving one keeps the full target rate.
    sizes = {}
    for motion in (0.0, 0.1):
        machine = Machine(per_pixel=1.0 / (6.3 * 320 * 240))
        governor = SizeGovernor(LADDER, target_hz=6.0, start=2)
        for _ in range(80):
            size = governor.size
            seconds = machine.per_pixel * area(size)
            machine.now += seconds
            governor.observe(seconds, machine.now, motion)
        sizes[motion] = governor.size
    assert area(sizes[0.0]) > area(sizes[0.1])
    # Still, it holds at least half the target: it never crawls.
    assert 1.0 / (machine.per_pixel * area(sizes[0.0])) >= 3.0 * (1 - HYSTERESIS)
