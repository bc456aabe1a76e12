"""The dream's size, following the machine: a ladder of sizes and a governor that climbs it.

A live run's dream survives on moving pictures only if it refreshes faster than the picture
moves (see DESIGN.md, "The one rule of a live run"), and the same size refreshes 4x faster on
one host than on another. So with ``--dream-size auto`` the dream thread measures what each
keyframe costs and keeps the largest size of a ladder whose refresh rate holds a target::

    ladder = size_ladder(640, 360, smallest=96)      # (w, h) rungs, small to large
    governor = SizeGovernor(ladder, target_hz=6.0, start=...)
    size = governor.observe(seconds, now)             # after each keyframe: the size to dream next

The cost of a keyframe grows with its pixels (the convolutions dominate), so the rung in use
(measured now, under today's load) predicts the others. Hysteresis: the governor steps down
when the rate falls ``HYSTERESIS`` below the target, up only to rungs predicted to hold the
target itself (the prediction by pixels overstates a larger rung's cost, so a climb lands at or
above the target), never sooner than ``SETTLE`` keyframes after a change, and a rung found
too slow is not tried again for ``RETRY_AFTER_S``. Each size is compiled once (a trace), on
the dream thread, off the output path: the first keyframe at a new size carries that trace and
is not measured.

Pure logic: no TensorFlow, no threads, no clock of its own (the caller passes ``now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from livedream.config import DreamSize

Size = tuple[int, int]  # (w, h)

LADDER_RATIO = 1.25  # one rung to the next: ~1.56x the pixels, ~1.5x the cost
SMALLEST_SHORT_SIDE = 96  # below this the dream is a blur on a webcam picture
# Where the climb starts: 160x120 refreshes ~7 times a second on the slow 2-vCPU AMD host (the
# dream shows within a second everywhere); a faster machine climbs from there.
START_SHORT_SIDE = 160
# A rate this far below the target steps down; a climb needs the target itself: the band between
# keeps a size that holds the target by a hair from flapping. With no margin on the way up, a
# machine whose fixed 320x240 just holds the target climbs to it (the Xeon's 6.3 for 6).
HYSTERESIS = 0.15
SETTLE = 3  # keyframes measured at a size before the governor may leave it
EMA = 0.35  # weight of the newest keyframe in a rung's running cost
# A rung that was measured too slow is not tried again for this many seconds: load and motion
# change, but probing a too-large size every few seconds costs a trace's worth of dream each time.
RETRY_AFTER_S = 20.0
# Motion, as the share of the picture's width crossed a second, below which the picture counts
# as still: a still picture keeps its dream however old (the compositor fades it with age x
# motion), so it needs no speed and dreams larger. bikes.mp4's slow pan: 0.085 median, 0.03 at
# the quartile; a still frame with sensor noise: 0.005.
STILL_MOTION = 0.03
STILL_RATE_SHARE = 0.5  # a still picture's target: this share of the rate asked for
MOTION_EMA = 0.3  # weight of the newest keyframe's motion


def even(value: float) -> int:
    """``value`` rounded to an even whole number, at least 2 (encoders and pooling like them)."""
    return max(2, round(value / 2) * 2)


def size_ladder(
    width: int,
    height: int,
    *,
    smallest: int = SMALLEST_SHORT_SIDE,
    largest: int | None = None,
    ratio: float = LADDER_RATIO,
) -> tuple[Size, ...]:
    """The dream sizes a frame of ``width`` x ``height`` may be dreamed at, small to large.

    Aspect kept, even sides, short sides from ``smallest`` up to ``largest`` (default: the
    frame's own), ``ratio`` apart. The top rung is the largest itself; a frame smaller than
    ``smallest`` gets its own size as the only rung.

    Args:
        width, height: the frame's size.
        smallest: the smallest short side (the model's and the optical flow's minimum, or more).
        largest: the largest short side; None: the frame's own.
    """
    short = min(width, height)
    top = short if largest is None else min(short, largest)
    if top <= smallest:
        return (_scaled(width, height, top),)
    sides: list[float] = []
    side = float(smallest)
    while side < top / ratio**0.5:  # the last rung below the top is at least ~1.12x below it
        sides.append(side)
        side *= ratio
    sides.append(float(top))
    sizes: list[Size] = []
    for s in sides:
        size = _scaled(width, height, s)
        if not sizes or size != sizes[-1]:
            sizes.append(size)
    return tuple(sizes)


def _scaled(width: int, height: int, short_side: float) -> Size:
    if round(short_side) >= min(width, height):
        return width, height
    scale = short_side / min(width, height)
    return even(width * scale), even(height * scale)


def area(size: Size) -> int:
    """Pixels of a (w, h) size."""
    return size[0] * size[1]


@dataclass
class SizeGovernor:
    """Picks the largest rung of ``ladder`` whose keyframes come at ``target_hz`` or faster.

    Thread: the dream thread (``observe``); ``size``, ``target_hz`` and ``rung`` may be read
    anywhere (plain attribute reads).

    Args:
        ladder: sizes small to large (``size_ladder``).
        target_hz: keyframes a second to hold.
        start: the rung to start on (an index into ``ladder``).
    """

    ladder: Sequence[Size]
    target_hz: float
    start: int = 0
    rung: int = field(init=False)
    changes: int = field(init=False, default=0)  # how often the size changed
    _cost: dict[int, float] = field(init=False, default_factory=dict)  # rung -> s per keyframe
    _too_slow_at: dict[int, float] = field(init=False, default_factory=dict)  # rung -> when
    _seen: int = field(init=False, default=0)  # keyframes observed at this rung
    _fresh: bool = field(init=False, default=True)  # the next keyframe carries a trace
    _motion: float | None = field(init=False, default=None)  # smoothed share of width / s

    def __post_init__(self) -> None:
        if not self.ladder:
            raise ValueError("the size ladder is empty")
        if self.target_hz <= 0:
            raise ValueError(f"target rate must be above 0, got {self.target_hz}")
        self.rung = min(max(0, self.start), len(self.ladder) - 1)

    @property
    def size(self) -> Size:
        """The size to dream at now."""
        return self.ladder[self.rung]

    @property
    def goal_hz(self) -> float:
        """The rate aimed at now: the target, less for a picture that hardly moves."""
        if self._motion is None:
            return self.target_hz
        share = min(1.0, max(STILL_RATE_SHARE, self._motion / STILL_MOTION))
        return self.target_hz * share

    def cost(self, rung: int) -> float | None:
        """Seconds a keyframe costs at ``rung``: measured there when it is the rung in use, else
        predicted by pixels from the rung in use (measured now, so under today's load; another
        rung's own figure may be minutes old); None before anything was measured."""
        if not self._cost:
            return None
        known = (
            self.rung if self.rung in self._cost else min(self._cost, key=lambda r: abs(r - rung))
        )
        return self._cost[known] * area(self.ladder[rung]) / area(self.ladder[known])

    def observe(self, seconds: float, now: float, motion: float | None = None) -> Size:
        """Records that the last keyframe took ``seconds``; returns the size for the next one.

        Args:
            seconds: the keyframe's whole cost on the dream thread (steps, carry, faces).
            now: the caller's clock, in seconds (only differences matter).
            motion: how fast the picture moves, as the share of its width crossed a second
                (None: not measured; the full target rate applies).
        """
        if motion is not None:
            old_motion = self._motion
            self._motion = (
                motion if old_motion is None else old_motion + MOTION_EMA * (motion - old_motion)
            )
        if self._fresh:  # the first keyframe at a size pays its trace: not its running cost
            self._fresh = False
            return self.size
        old = self._cost.get(self.rung)
        self._cost[self.rung] = seconds if old is None else old + EMA * (seconds - old)
        self._seen += 1
        if self._seen < SETTLE:
            return self.size
        rate = 1.0 / max(1e-6, self._cost[self.rung])
        if rate < self.goal_hz * (1.0 - HYSTERESIS) and self.rung > 0:
            self._too_slow_at[self.rung] = now
            self._move(self._best_below())
        else:
            self._move(self._best_above(now))
        return self.size

    def retarget(self, target_hz: float) -> None:
        """A new target rate (a live control); the next observations act on it."""
        if target_hz <= 0:
            raise ValueError(f"target rate must be above 0, got {target_hz}")
        self.target_hz = target_hz
        self._too_slow_at.clear()

    def _best_below(self) -> int:
        """The largest rung below this one predicted to hold the target (at least one down)."""
        for rung in range(self.rung - 1, -1, -1):
            cost = self.cost(rung)
            if cost is not None and 1.0 / cost >= self.goal_hz:
                return rung
        return 0

    def _best_above(self, now: float) -> int:
        """The largest rung above this one predicted to hold the target, below any rung found
        too slow in the last ``RETRY_AFTER_S``; this one if none.
        The prediction by pixels overestimates larger rungs (a keyframe's fixed costs do not
        grow), so a climb of several rungs at once never overshoots by the model's account."""
        best = self.rung
        for rung in range(self.rung + 1, len(self.ladder)):
            since = self._too_slow_at.get(rung)
            if since is not None and now - since < RETRY_AFTER_S:
                break
            cost = self.cost(rung)
            if cost is None or 1.0 / cost < self.goal_hz:
                break
            best = rung
        return best

    def _move(self, rung: int) -> None:
        if rung == self.rung:
            return
        self.rung = rung
        self.changes += 1
        self._seen = 0
        self._fresh = rung not in self._cost  # a size seen before is compiled already


class DreamSizer:
    """The size each keyframe is dreamed at, as the policy and the live controls say.

    A fixed size (``--dream-size WxH``, or a size picked live) is used as it is; the short-side
    policy keeps the frame's aspect; ``auto`` climbs the ladder of the frame's sizes with a
    ``SizeGovernor`` (built on the first frame, when the frame's size is known).

    Thread: the dream thread (``size_for``, ``observe``, ``follow``).

    Args:
        policy: the resolved dream-size policy (``config.DreamSize``).
        smallest: the ladder's smallest short side (the model's and the flow's minimum or more).
    """

    def __init__(self, policy: DreamSize, *, smallest: int = SMALLEST_SHORT_SIDE) -> None:
        # A fixed or short-side size is the policy's own; automatic sizes respect ``smallest``.
        self.policy = policy
        self.smallest = smallest
        self.auto = policy.auto
        self.target_hz = policy.rate
        self.fixed: Size | None = None  # a size picked live (None: the policy's)
        self.governor: SizeGovernor | None = None
        self._frame: Size | None = None

    def size_for(self, width: int, height: int) -> Size:
        """The size to dream a ``width`` x ``height`` frame at now."""
        if self.fixed is not None:
            return self.fixed
        if not self.auto:
            return self.policy.size_for(width, height)
        if self.governor is None or self._frame != (width, height):
            ladder = size_ladder(width, height, smallest=self.smallest)
            start = min(range(len(ladder)), key=lambda r: abs(min(ladder[r]) - START_SHORT_SIDE))
            self.governor = SizeGovernor(ladder, self.target_hz, start=start)
            self._frame = (width, height)
        return self.governor.size

    def observe(self, seconds: float, now: float, motion: float | None = None) -> None:
        """The last keyframe cost ``seconds`` (at the size ``size_for`` gave); ``now``: its end;
        ``motion``: the picture's, as the share of its width crossed a second (None: unknown)."""
        if self.auto and self.fixed is None and self.governor is not None:
            self.governor.observe(seconds, now, motion)

    def follow(self, auto: bool, fixed: Size | None, rate: float) -> None:
        """The live controls: the size follows the machine (``auto``), a size picked (``fixed``:
        it wins), the target rate."""
        self.auto, self.fixed = auto, fixed
        if rate != self.target_hz:
            self.target_hz = rate
            if self.governor is not None:
                self.governor.retarget(rate)
