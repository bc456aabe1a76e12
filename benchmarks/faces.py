"""The faces section of ``fps.py``: what keeping faces readable costs a live run.

A real face (scikit-image's astronaut, the one ``tests/test_faces.py`` uses) slides back and
forth across a 640x480 picture paced like a 30 fps webcam; the pipeline runs live with face
protection at its live default. After the burn-in (the first keyframes compile the step) it
sums the face work: detection and flow tracking per keyframe (dream thread) and the mask per
output frame (the compositing thread). Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from livedream.config import LIVE_FACE_STRENGTH
from livedream.errors import UsageError
from livedream.media import Frame
from livedream.sources import Source
from settings import LIVE_PACE_FPS, Settings

WIDTH, HEIGHT = 640, 480
FACE_PHOTO = 480  # px: the photo's side (the picture's height); its face ~90 px wide, a call's
SWEEP = 60  # px the photo slides left and right, so the tracker has motion to follow
SECONDS = 6.0  # measured output time after the burn-in (quick: half)
BURN_IN_KEYFRAMES = 2  # the first keyframe compiles the step


@dataclass
class FaceFigures:
    """Face protection in a live run, after the burn-in."""

    face_ms: float  # detection and tracking per output frame, averaged (mask included)
    face_share_of_dream: float  # that time over the dream thread's dreaming time
    face_keyframe_ms: float  # detection and flow tracking per keyframe (dream thread)
    face_mask_ms: float  # the mask per output frame (the compositing thread)
    face_detections: int  # times the detector ran
    faces_protected: int  # faces protected on the last output frame (1 expected)
    face_frames: int  # output frames measured


class FaceClip(Source):
    """A live 640x480 source: the astronaut sliding back and forth in front of a grey wall."""

    is_live = True

    def __init__(self, fps: float = LIVE_PACE_FPS) -> None:
        super().__init__("astronaut (scikit-image), sliding")
        from skimage import data

        self.width, self.height, self.fps = WIDTH, HEIGHT, fps
        photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
        self._photo = cv2.resize(photo, (FACE_PHOTO, FACE_PHOTO), interpolation=cv2.INTER_AREA)
        self._index = 0

    def frame_at(self, index: int) -> Frame:
        """Frame ``index``: (480, 640, 3) uint8 BGR."""
        frame = np.full((HEIGHT, WIDTH, 3), 96, np.uint8)
        x = round((WIDTH - FACE_PHOTO) / 2 + SWEEP * np.sin(index / 30.0))
        y = HEIGHT - FACE_PHOTO
        frame[y:, x : x + FACE_PHOTO] = self._photo
        return frame

    def _read(self) -> Frame | None:
        frame = self.frame_at(self._index)
        self._index += 1
        return frame

    def _release(self) -> None:
        pass


def measure_faces(settings: Settings) -> FaceFigures:
    """Live, paced at 30 fps, face protection on: what the face work costs."""
    from livedream.controls import Controls
    from livedream.dream import Dreamer
    from livedream.faces import FaceTracker
    from livedream.pipeline import LivePipeline, Stats
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    dream = resolve_here(settings.dream_config())
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
    outputs = detections = 0
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
                started, detections = time.perf_counter(), tracker.detections
                stats.face_seconds = stats.face_mask_seconds = stats.dream_seconds_total = 0.0
            elif started is not None:
                outputs += 1
                if time.perf_counter() - started >= seconds:
                    break
    if pipeline.error is not None:
        raise pipeline.error
    if started is None or outputs == 0 or stats.dream_seconds_total <= 0:
        raise UsageError("the faces section produced no dreamed frame within 300 s")
    keyframes = max(1, stats.dreamed - BURN_IN_KEYFRAMES)
    face_s = stats.face_seconds + stats.face_mask_seconds
    return FaceFigures(
        face_ms=1000.0 * face_s / outputs,
        face_share_of_dream=face_s / stats.dream_seconds_total,
        face_keyframe_ms=1000.0 * stats.face_seconds / keyframes,
        face_mask_ms=1000.0 * stats.face_mask_seconds / outputs,
        face_detections=tracker.detections - detections,
        faces_protected=stats.faces,
        face_frames=outputs,
    )
