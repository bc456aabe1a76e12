"""The faces section of ``fps.py``: how well faces are found and what keeping them readable
costs a live run. Run on its own (``python benchmarks/faces.py``) it compares the detector
options on the footage and prints a table; no TensorFlow needed.

Footage (``tests/faceclips.py``, the tests' own): scikit-image's astronaut, a real face, in a
call-like frame (320x240 and 176x144, the size issue 20's clip was measured at), turned to 60
degrees each way (her head re-projected as a cylinder), tilted to 30 degrees each way, and moved
across the frame until half of her face is out of it. It shows what a turn, a tilt and a
partial view do to the detector and to flow tracking of one face in front of a still
background. It cannot show a real profile (an ear coming into view, the outline of a nose),
lighting that changes as the head turns, or more than one face.

The cost: that footage at 640x480 paced like a 30 fps webcam, the head turning to 50 degrees
and back as the face drifts, runs live with face protection at its live default, at the run's
dream size (320x240 by default) and at 160x120. After the burn-in (the first keyframes compile
the step) it sums the face work: detection and flow tracking per keyframe (dream thread) and
the mask per output frame (the compositing thread), over the dream thread's dreaming time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from livedream.config import LIVE_FACE_STRENGTH
from livedream.errors import UsageError
from livedream.faces import Box
from livedream.media import Frame
from livedream.sources import Source
from settings import LIVE_PACE_FPS, Settings

WIDTH, HEIGHT = 640, 480
SWEEP = 60  # px the face drifts left and right, so the tracker has motion to follow
TURN = 50.0  # degrees the head turns each way, every 4 s
SECONDS = 6.0  # measured output time after the burn-in at least (quick: half)
BURN_IN_KEYFRAMES = 2  # the first keyframe compiles the step
MIN_KEYFRAMES = 3  # measured keyframes at least, however slow the machine
SMALL_DREAM = (160, 120)  # the dream size of a slow machine: the face work is a larger share
HIT_SIZES = ((320, 240), (176, 144))
KEYFRAME_FPS = 6.0  # keyframes a second when the tracker is run on the footage alone


def _footage() -> Any:
    """``tests/faceclips.py``: the footage the tests check, so the hit rate is measured on it."""
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import faceclips

    return faceclips


@dataclass
class FaceFigures:
    """How well faces are found, and what protecting them costs a live run after the burn-in."""

    face_ms: float  # detection and tracking per output frame, averaged (mask included)
    face_share_of_dream: float  # that time over the dream thread's time, at the run's dream size
    face_share_of_dream_small: float  # the same at SMALL_DREAM
    face_keyframe_ms: float  # detection and flow tracking per keyframe (dream thread)
    face_mask_ms: float  # the mask per output frame (the compositing thread)
    face_detections: int  # times the detector ran
    faces_protected: int  # faces protected on the last output frame (1 expected)
    face_frames: int  # output frames measured
    face_detect_ms: float  # one detection on the footage, averaged
    face_hit_rate_turn: float  # frames of the turn (to 60 degrees) the detector finds her in
    face_hit_rate_tilt: float  # ... of the tilt (to 30 degrees)
    face_hit_rate_moved: float  # ... of her moving across the frame, half out at the ends
    face_tracked_rate: float  # frames of the three in a row the tracker keeps her in


# -- the detector's hit rate ---------------------------------------------------------------------
class Detector(Protocol):
    def detect(self, frame: Frame, *, tilts: tuple[float, ...] | None = None) -> list[Box]: ...


Footage = list[tuple[Frame, Box]]  # frames and the true box


def footage(width: int, height: int) -> dict[str, Footage]:
    """The turn, the tilt and the move at ``width`` x ``height``: frames and true face boxes."""
    clip = _footage().CallClip(width, height)
    x = -0.12 * width
    _, _, fw, _ = clip.face_box(0)
    left, right = -clip.face_box(0)[0] - fw / 2, width - clip.face_box(0)[0] - fw / 2
    return {
        "turn": [(clip.frame(x, yaw=y), clip.face_box(x, y)) for y in range(-60, 61, 5)],
        "tilt": [(clip.frame(x, roll=r), clip.face_box(x)) for r in range(-30, 31, 5)],
        "moved": [(clip.frame(m), clip.face_box(m)) for m in np.linspace(left, right, 25)],
    }


def found(boxes: list[Box], truth: tuple[float, ...]) -> bool:
    """Whether a box's centre lies within half the true box's size of the true centre."""
    tx, ty, tw, th = truth
    return any(
        abs(x + w / 2 - tx - tw / 2) < tw / 2 and abs(y + h / 2 - ty - th / 2) < th / 2
        for x, y, w, h in boxes
    )


def hit_rates(detector: Detector) -> tuple[dict[str, float], float]:
    """The share of each footage's frames ``detector`` finds the face in (both sizes pooled),
    and its ms per detection."""
    hits: dict[str, list[bool]] = {}
    seconds, calls = 0.0, 0
    for width, height in HIT_SIZES:
        for name, frames in footage(width, height).items():
            for frame, truth in frames:
                started = time.perf_counter()
                boxes = detector.detect(frame)
                seconds += time.perf_counter() - started
                calls += 1
                hits.setdefault(name, []).append(found(boxes, truth))
    return {name: float(np.mean(h)) for name, h in hits.items()}, 1000.0 * seconds / calls


def tracked_rate(make_tracker: Callable[[], Any]) -> float:
    """The share of frames a tracker keeps the face in, the turn, tilt and move played in a
    row at ``KEYFRAME_FPS`` keyframes a second, dreamed at half the frame's size."""
    kept = []
    for width, height in HIT_SIZES:
        tracker = make_tracker()
        frames = [f for clip in footage(width, height).values() for f in clip]
        for i, (frame, truth) in enumerate(frames):
            gray = cv2.cvtColor(
                cv2.resize(frame, (width // 2, height // 2), interpolation=cv2.INTER_AREA),
                cv2.COLOR_BGR2GRAY,
            )
            faces = tracker.update(frame, gray, i / KEYFRAME_FPS)
            boxes = [(2 * f.x, 2 * f.y, 2 * f.w, 2 * f.h) for f in faces if f.weight(0.0) > 0]
            kept.append(found(boxes, truth))
    return float(np.mean(kept))


class WithProfiles:
    """An option measured and not taken: the upright cascade, then where it finds nothing
    OpenCV's profile cascade on the frame and on its mirror image (for the other side)."""

    def __init__(self) -> None:
        from livedream.faces import HaarDetector

        self.frontal = HaarDetector(tilts=())
        self.profile = HaarDetector("haarcascade_profileface.xml", tilts=())

    def detect(self, frame: Frame, *, tilts: tuple[float, ...] | None = None) -> list[Box]:
        boxes = self.frontal.detect(frame)
        if not boxes:
            boxes = self.profile.detect(frame)
        if not boxes:
            w = frame.shape[1]
            mirrored = self.profile.detect(np.ascontiguousarray(frame[:, ::-1]))
            boxes = [(w - x - bw, y, bw, bh) for x, y, bw, bh in mirrored]
        return boxes


def compare_detectors() -> Iterator[tuple[str, dict[str, float], float]]:
    """Each option's name, hit rates and ms per detection."""
    from livedream.faces import HaarDetector

    options: list[tuple[str, Detector]] = [
        ("upright cascade", HaarDetector(tilts=())),
        ("+ profiles, both sides", WithProfiles()),
        ("+ picture turned +-15 deg (used)", HaarDetector()),
        ("+ picture turned +-10, +-20 deg", HaarDetector(tilts=(10.0, -10.0, 20.0, -20.0))),
    ]
    for name, detector in options:
        rates, ms = hit_rates(detector)
        yield name, rates, ms


# -- the cost in a live run ----------------------------------------------------------------------
class FaceClip(Source):
    """A live 640x480 source: the astronaut drifting left and right, turning her head."""

    is_live = True

    def __init__(self, fps: float = LIVE_PACE_FPS) -> None:
        super().__init__("astronaut (scikit-image), drifting and turning")
        self.width, self.height, self.fps = WIDTH, HEIGHT, fps
        self._clip = _footage().CallClip(WIDTH, HEIGHT)
        self._index = 0

    def frame_at(self, index: int) -> Frame:
        """Frame ``index``: (480, 640, 3) uint8 BGR."""
        t = index / self.fps
        x = -0.12 * WIDTH + SWEEP * np.sin(t)
        frame: Frame = self._clip.frame(x, yaw=TURN * np.sin(2 * np.pi * t / 4.0))
        return frame

    def _read(self) -> Frame | None:
        frame = self.frame_at(self._index)
        self._index += 1
        return frame

    def _release(self) -> None:
        pass


@dataclass
class _Cost:
    face_s: float
    mask_s: float
    dream_s: float
    keyframes: int
    outputs: int
    detections: int
    faces: int


def _live_cost(settings: Settings, dream_size: tuple[int, int]) -> _Cost:
    """Live, paced at 30 fps, face protection on, dreamed at ``dream_size``."""
    from livedream.controls import Controls
    from livedream.dream import Dreamer
    from livedream.faces import FaceTracker
    from livedream.pipeline import LivePipeline, Stats
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    dream = resolve_here(settings.dream_config(dream_size=dream_size))
    controls = Controls.from_dream(dream, face_strength=LIVE_FACE_STRENGTH)
    tracker = FaceTracker()
    stats = Stats()
    seconds = SECONDS / 2 if settings.quick else SECONDS
    pipeline = LivePipeline(
        FaceClip(),
        lambda: Dreamer(dream),
        pace_fps=LIVE_PACE_FPS,
        controls=controls,
        stats=stats,
        faces=tracker,
    )
    deadline = time.perf_counter() + 300.0  # the model build and compile, then the run
    started: float | None = None
    outputs = detections = dreamed = 0
    with pipeline, NullSink() as sink:
        while time.perf_counter() < deadline:
            item = pipeline.next_frame(0.5)
            if item is None:
                if pipeline.ended:
                    break
                continue
            sink.write(item.image)
            if started is None and stats.dreamed >= BURN_IN_KEYFRAMES:
                # Sums from here on: the compile and the first keyframes are not timed.
                started, detections, dreamed = (
                    time.perf_counter(),
                    tracker.detections,
                    stats.dreamed,
                )
                stats.face_seconds = stats.face_mask_seconds = stats.dream_seconds_total = 0.0
            elif started is not None:
                outputs += 1
                timed = time.perf_counter() - started >= seconds
                if timed and stats.dreamed - dreamed >= MIN_KEYFRAMES:
                    break
    if pipeline.error is not None:
        raise pipeline.error
    if started is None or outputs == 0 or stats.dream_seconds_total <= 0:
        raise UsageError("the faces section produced no dreamed frame within 300 s")
    return _Cost(
        face_s=stats.face_seconds,
        mask_s=stats.face_mask_seconds,
        dream_s=stats.dream_seconds_total,
        keyframes=max(1, stats.dreamed - dreamed),
        outputs=outputs,
        detections=tracker.detections - detections,
        faces=stats.faces,
    )


def measure_faces(settings: Settings) -> FaceFigures:
    """The detector's hit rate on the footage, then live runs at the run's dream size and at
    ``SMALL_DREAM``: what the face work costs."""
    from livedream.faces import FaceTracker, HaarDetector

    rates, detect_ms = hit_rates(HaarDetector())
    tracked = tracked_rate(FaceTracker)
    cost = _live_cost(settings, settings.dream_size)
    small = _live_cost(settings, SMALL_DREAM)
    face_s = cost.face_s + cost.mask_s
    return FaceFigures(
        face_ms=1000.0 * face_s / cost.outputs,
        face_share_of_dream=face_s / cost.dream_s,
        face_share_of_dream_small=(small.face_s + small.mask_s) / small.dream_s,
        face_keyframe_ms=1000.0 * cost.face_s / cost.keyframes,
        face_mask_ms=1000.0 * cost.mask_s / cost.outputs,
        face_detections=cost.detections,
        faces_protected=cost.faces,
        face_frames=cost.outputs,
        face_detect_ms=detect_ms,
        face_hit_rate_turn=rates["turn"],
        face_hit_rate_tilt=rates["tilt"],
        face_hit_rate_moved=rates["moved"],
        face_tracked_rate=tracked,
    )


def main() -> None:
    """Prints each detector option's hit rates and cost on the footage."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="face detectors on the footage (320x240 and 176x144 pooled)")
    for column in ("option", "turn", "tilt", "moved", "ms / detection"):
        table.add_column(column, justify="left" if column == "option" else "right")
    for name, rates, ms in compare_detectors():
        table.add_row(name, *(f"{rates[k]:.2f}" for k in ("turn", "tilt", "moved")), f"{ms:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
