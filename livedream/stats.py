"""What a run measures as it goes: rates, latencies, dream ages; read by the status table,
the overlay and the benchmark."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

WINDOW = 600  # recent samples kept per measure: 20 s at 30 fps


@dataclass
class TimedFrame:
    """A frame on its way through the pipeline.

    Attributes:
        index: 0-based number of the captured frame.
        image: (H, W, 3) uint8 BGR.
        captured: ``time.perf_counter()`` when it was captured; latency is measured from it.
        pts: its time in the input file, in seconds (None for a camera).
        dreamed: it carries a dream (False before the first keyframe, after a reset or cut).
    """

    index: int
    image: np.ndarray
    captured: float
    pts: float | None = None
    dreamed: bool = False


class RateMeter:
    """Events per second over the last ``window`` seconds. Thread-safe."""

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._times.append(now)
            while self._times and now - self._times[0] > self._window:
                self._times.popleft()

    def rate(self) -> float:
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


def _recent() -> deque[float]:
    return deque(maxlen=WINDOW)


def quantile_ms(values: deque[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (seconds), in ms; 0 when there are none."""
    snapshot = list(values)
    return float(np.quantile(snapshot, q) * 1000.0) if snapshot else 0.0


@dataclass
class Stats:
    """What the terminal table and the heads-up overlay show.

    Each counter has one writing thread, except ``dropped`` (frames that never went out) and
    ``skipped`` (frames the dream did not take), counted through ``count_*()`` under a lock.
    """

    captured: int = 0
    dreamed: int = 0  # keyframes: frames the dream ran on
    output: int = 0
    dropped: int = 0  # frames that never went out (a consumer too slow to keep up)
    skipped: int = 0  # live: frames the dream did not run on (the compositor still did)
    capture_fps: RateMeter = field(default_factory=RateMeter)
    dream_fps: RateMeter = field(default_factory=RateMeter)
    output_fps: RateMeter = field(default_factory=RateMeter)
    latencies: deque[float] = field(default_factory=_recent)  # capture to output, seconds
    dream_seconds: deque[float] = field(default_factory=_recent)  # per keyframe
    dream_ages: deque[float] = field(default_factory=_recent)  # keyframe capture to its use
    compositor_seconds: deque[float] = field(default_factory=_recent)
    faces: int = 0  # faces protected on the newest output frame (the compositing thread)
    dream_size: tuple[int, int] | None = None  # (w, h) of the newest keyframe (dream thread)
    face_seconds: float = 0.0  # face detection and tracking, all keyframes (dream thread)
    face_mask_seconds: float = 0.0  # the face masks of all output frames (compositing thread)
    dream_seconds_total: float = 0.0  # the dream thread's dreaming, all keyframes, faces apart
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_drop(self) -> None:
        """Counts one frame that will not go out; safe from any thread."""
        with self._lock:
            self.dropped += 1

    def count_skip(self) -> None:
        """Counts one frame the dream did not run on; safe from any thread."""
        with self._lock:
            self.skipped += 1

    def latency_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) of recent capture-to-output latencies, in ms."""
        return quantile_ms(self.latencies, q)

    def dream_age_ms(self, q: float) -> float:
        """The ``q`` quantile of how old the dream on recent output frames was, in ms."""
        return quantile_ms(self.dream_ages, q)
