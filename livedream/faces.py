"""Faces kept readable: a face detector, a tracker that follows faces between detections, and
the soft mask that scales the dream residual on them.

Faces live in *keyframe* coordinates (the dream size): the dream thread looks for faces on the
frame it dreams, a few times a second (``DETECT_EVERY_S``), and between two detections carries
the boxes from one keyframe to the next by the median optical flow inside each box. The
compositor then moves the mask onto every output frame with the flow it already computes for
the residual (frame -> keyframe), so the protection sits exactly on the dream that was painted
on the face. A face the detector loses is held for ``HOLD_S`` and then fades out over
``FADE_S``: a missed detection never makes the dream blink back onto a face.

The detector is OpenCV's Haar cascade (``haarcascade_frontalface_alt2.xml``), which the
``opencv-python`` 4.x wheels ship: offline, no model file to fetch. The 5.x wheels dropped it
(``pyproject.toml`` pins ``opencv-python<5``).

    tracker = FaceTracker()                                    # dream thread
    faces = tracker.update(frame, keyframe_gray, clock)        # per keyframe
    keep = keep_map(face_mask(gray.shape, faces, now), 0.35)   # compositing thread
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from livedream.errors import FaceDetectorError
from livedream.media import Frame
from livedream.temporal import FlowEstimator

log = logging.getLogger(__name__)

CASCADE = "haarcascade_frontalface_alt2.xml"  # found the test face at every size tried
# Faces are looked for on the frame scaled to this short side: a face on a call (a quarter to
# half of the picture's height) is 30-60 px there, well above the cascade's smallest window,
# and a detection costs ~10 ms here instead of ~20 ms at 144 px and ~0.5 s at 512x512.
DETECT_SHORT = 120
MIN_FACE = 16  # px at DETECT_SHORT: faces down to 1/7 of the picture's height
SCALE_FACTOR = 1.1  # the cascade's pyramid step: 1.2 missed the test face at 144 px
MIN_NEIGHBORS = 3  # fewer false faces than 1-2; the hold covers the detections it misses
DETECT_EVERY_S = 0.3  # at most ~3 detections a second; the flow follows faces in between
HOLD_S = 1.0  # a face the detector lost keeps its full protection this long (no blinking)
FADE_S = 0.5  # and then fades out over this long
MATCH_DISTANCE = 0.6  # a detection within this share of a face's size is that face again
# The mask: an ellipse around the detector's box (brows to mouth) that takes in forehead and
# chin, feathered by a blur of this share of the face's width so no edge shows.
GROW_X, GROW_Y = 0.62, 0.8
FEATHER = 0.18


@dataclass(frozen=True)
class Face:
    """One face, in keyframe (dream-size) pixels.

    Attributes:
        x, y, w, h: its box, top left and size.
        seen: the clock of its last detection (``time.perf_counter()`` live, the video's
            own time in a file render).
    """

    x: float
    y: float
    w: float
    h: float
    seen: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def weight(self, now: float, *, hold: float = HOLD_S, fade: float = FADE_S) -> float:
        """How much protection it gets at ``now``: 1 until ``hold`` after it was last seen, then
        down to 0 over ``fade`` seconds."""
        lost = now - self.seen - hold
        if lost <= 0:
            return 1.0
        return max(0.0, 1.0 - lost / fade) if fade > 0 else 0.0


class HaarDetector:
    """Frontal faces by OpenCV's Haar cascade, on the frame scaled down to ``short_side``.

    Raises:
        FaceDetectorError: this OpenCV has no cascade classifier or no cascade data (5.x).
    """

    def __init__(self, cascade: str = CASCADE, *, short_side: int = DETECT_SHORT) -> None:
        self.short_side = short_side
        data = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not hasattr(cv2, "CascadeClassifier") or data is None:
            raise FaceDetectorError(
                f"OpenCV {cv2.__version__} has no Haar cascades; face protection needs "
                "opencv-python 4.x: pip install 'opencv-python>=4.8,<5' (or --face-strength 1)"
            )
        path = Path(data) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(
                f"could not load the face cascade {path}: expected the file that "
                "opencv-python 4.x ships; reinstall it (or --face-strength 1)"
            )

    def detect(self, frame: Frame) -> list[tuple[float, float, float, float]]:
        """Faces in ``frame`` ((H, W, 3) uint8 BGR): boxes (x, y, w, h) in its own pixels."""
        h, w = frame.shape[:2]
        scale = min(1.0, self.short_side / min(h, w))
        small = frame
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(MIN_FACE,) * 2
        )
        return [
            (float(x) / scale, float(y) / scale, float(bw) / scale, float(bh) / scale)
            for x, y, bw, bh in found
        ]


class FaceTracker:
    """The faces of each keyframe: detected a few times a second, followed by flow in between,
    held when lost. The dream thread only.

    Args:
        detector: finds faces in a frame; a ``HaarDetector`` when None.
        detect_every: seconds (of the frames' clock) between two detections.
        hold, fade: a lost face keeps its protection ``hold`` seconds, then fades over ``fade``.
    """

    def __init__(
        self,
        detector: HaarDetector | None = None,
        *,
        detect_every: float = DETECT_EVERY_S,
        hold: float = HOLD_S,
        fade: float = FADE_S,
    ) -> None:
        self.detector = detector if detector is not None else HaarDetector()
        self.detect_every = detect_every
        self.hold = hold
        self.fade = fade
        self.faces: tuple[Face, ...] = ()
        self.detections = 0  # how many times the detector ran
        self._estimator = FlowEstimator()
        self._gray: np.ndarray | None = None  # the previous keyframe's, (h, w) uint8
        self._detected_at = -float("inf")

    def update(self, frame: Frame, gray: np.ndarray, clock: float) -> tuple[Face, ...]:
        """The faces of a new keyframe.

        Args:
            frame: the keyframe's frame, (H, W, 3) uint8 BGR, any size.
            gray: the keyframe at the dream size, (h, w) uint8; boxes are in its pixels.
            clock: its capture time.
        """
        faces = self.faces
        if faces and self._gray is not None and self._gray.shape == gray.shape:
            faces = self._follow(faces, self._gray, gray)
        self._gray = gray
        if clock - self._detected_at >= self.detect_every or clock < self._detected_at:
            self._detected_at = clock
            self.detections += 1
            sx = gray.shape[1] / frame.shape[1]
            sy = gray.shape[0] / frame.shape[0]
            boxes = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in self.detector.detect(frame)]
            faces = self._match(faces, boxes, clock)
        self.faces = tuple(f for f in faces if f.weight(clock, hold=self.hold, fade=self.fade) > 0)
        return self.faces

    def _follow(
        self, faces: tuple[Face, ...], previous: np.ndarray, current: np.ndarray
    ) -> tuple[Face, ...]:
        """Each face moved by the median flow inside its box, from ``previous`` to ``current``."""
        flow = self._estimator.flow(previous, current)  # (h, w, 2): previous(x) ~ current(x+f)
        h, w = current.shape
        moved = []
        for face in faces:
            x0, y0 = max(0, int(face.x)), max(0, int(face.y))
            x1, y1 = min(w, int(face.x + face.w) + 1), min(h, int(face.y + face.h) + 1)
            if x1 <= x0 or y1 <= y0:  # left the picture: held where it was until it fades
                moved.append(face)
                continue
            inside = flow[y0:y1, x0:x1].reshape(-1, 2)
            dx, dy = np.median(inside, axis=0)
            moved.append(replace(face, x=face.x + float(dx), y=face.y + float(dy)))
        return tuple(moved)

    @staticmethod
    def _match(
        faces: tuple[Face, ...], boxes: list[tuple[float, float, float, float]], clock: float
    ) -> tuple[Face, ...]:
        """The detections as faces: each takes over the nearest followed face (a new one
        otherwise); followed faces no detection took are kept as they were (held)."""
        left = list(faces)
        out = []
        for x, y, w, h in boxes:
            cx, cy = x + w / 2, y + h / 2
            best = min(
                left,
                key=lambda f: np.hypot(f.centre[0] - cx, f.centre[1] - cy),
                default=None,
            )
            if best is not None:
                distance = np.hypot(best.centre[0] - cx, best.centre[1] - cy)
                if distance <= MATCH_DISTANCE * max(best.w, w):
                    left.remove(best)
            out.append(Face(x, y, w, h, seen=clock))
        return (*out, *left)


def face_mask(
    shape: tuple[int, ...],
    faces: tuple[Face, ...],
    now: float,
    *,
    hold: float = HOLD_S,
    fade: float = FADE_S,
    scale: float = 1.0,
) -> np.ndarray:
    """A soft mask over the faces: (h, w) float32 in [0, 1], 1 on a face, feathered around it.

    Args:
        shape: the mask's (h, w, ...).
        faces: boxes in pixels of a picture ``scale`` times smaller than the mask.
        now: the clock the hold and fade are measured at.
    """
    h, w = shape[:2]
    mask = np.zeros((h, w), np.float32)
    for face in faces:
        weight = face.weight(now, hold=hold, fade=fade)
        if weight <= 0:
            continue
        cx, cy = (c * scale for c in face.centre)
        fw, fh = face.w * scale, face.h * scale
        one = np.zeros((h, w), np.float32)
        axes = (max(1, round(GROW_X * fw)), max(1, round(GROW_Y * fh)))
        cv2.ellipse(one, (round(cx), round(cy)), axes, 0.0, 0.0, 360.0, weight, -1, cv2.LINE_AA)
        sigma = max(0.5, FEATHER * fw)
        one = cv2.GaussianBlur(one, (0, 0), sigma)
        np.maximum(mask, one, out=mask)
    return mask


def keep_map(mask: np.ndarray, strength: float) -> np.ndarray:
    """How much of the dream each pixel keeps: 1 off faces, ``strength`` on them. (h, w)."""
    keep: np.ndarray = 1.0 - np.float32(1.0 - strength) * mask
    return keep


def protect_photo(
    original: Frame, dreamed: Frame, strength: float, detector: HaarDetector | None = None
) -> Frame:
    """A dreamed photo with only ``strength`` of the dream kept on its faces.

    Args:
        original, dreamed: (H, W, 3) uint8 BGR of the same size.
    """
    if strength >= 1.0:
        return dreamed
    detector = detector if detector is not None else HaarDetector()
    faces = tuple(Face(*box, seen=0.0) for box in detector.detect(original))
    log.debug("%d faces kept at %.2f of the dream", len(faces), strength)
    if not faces:
        return dreamed
    keep = keep_map(face_mask(original.shape, faces, 0.0), strength)[..., None]
    base = original.astype(np.float32)
    out = base + (dreamed.astype(np.float32) - base) * keep
    return np.clip(out, 0.0, 255.0).astype(np.uint8)  # type: ignore[no-any-return]
