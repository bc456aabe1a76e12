"""Faces kept readable: a face detector, a tracker that follows faces between detections, and
the soft mask that scales the dream residual on them.

Faces live in *keyframe* coordinates (the dream size): the dream thread looks for faces on the
frame it dreams, on the first keyframe and then a few times a second (``DETECT_EVERY_S``), and
between two detections carries the boxes from one keyframe to the next by the optical flow
inside each box. A face the detector misses (a head turned past what it finds) keeps its
protection for as long as the flow still follows it: it is dropped when the flow loses it (the
forward-backward check fails over most of its box), when it leaves the picture, on a scene
cut, or when the detector has not confirmed it for ``CONFIRM_S``; it then fades out over
``FADE_S`` (at once on a cut), so the dream never blinks onto a face. The compositor moves the
mask onto every output frame with the flow it already computes for the residual (frame ->
keyframe), so the protection sits exactly on the dream painted on the face.

The detector is OpenCV's Haar cascade (``haarcascade_frontalface_alt2.xml``), which the
``opencv-python`` 4.x wheels ship: offline, no model file to fetch. The 5.x wheels dropped it
(``pyproject.toml`` pins ``opencv-python<5``). Where the upright picture shows no face and none
is being followed, it also looks at the picture turned ``TILTS`` degrees, for heads tilted past
the cascade's reach: all of them on the first keyframe (and after a cut), one at a time after.

    tracker = FaceTracker()                                    # dream thread
    faces = tracker.update(frame, keyframe_gray, clock)        # per keyframe
    keep = keep_map(face_mask(gray.shape, faces, now), 0.35)   # compositing thread
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from livedream.config import protecting
from livedream.errors import FaceDetectorError
from livedream.media import Frame
from livedream.temporal import FlowEstimator, consistency, grid, warp

log = logging.getLogger(__name__)

CASCADE = "haarcascade_frontalface_alt2.xml"  # found the test face at every size tried
# Faces are looked for on the frame scaled to this short side: a face on a call (a quarter to
# half of the picture's height) is 30-60 px there, well above the cascade's smallest window,
# and a detection costs ~10 ms here instead of ~20 ms at 144 px and ~0.5 s at 512x512.
DETECT_SHORT = 120
MIN_FACE = 16  # px at DETECT_SHORT: faces down to 1/7 of the picture's height
SCALE_FACTOR = 1.1  # the cascade's pyramid step: 1.2 missed the test face at 144 px
MIN_NEIGHBORS = 3  # fewer false faces than 1-2; tracking covers the detections it misses
# Where the upright picture shows no face, the picture turned by these (degrees): the cascade
# alone finds heads tilted up to ~10 degrees, with these up to ~25 (benchmarks/faces.py). The
# profile cascade found no more of the turned test face and cost twice as much: not used.
TILTS = (15.0, -15.0)
DETECT_EVERY_S = 0.3  # at most ~3 detections a second; the flow follows faces in between
CONFIRM_S = 10.0  # a face the detector has not seen again for this long is dropped (a false one)
FADE_S = 0.5  # a dropped face's protection fades out over this long
# Following a face from one keyframe to the next: the flow is checked both ways (round trip
# error in px at the dream size, as the compositor does) and against the picture (grey levels);
# a face whose box keeps less than LOST_TRUST of its pixels trusted is lost, and a picture
# with less than CUT_TRUST trusted overall is a new scene (the compositor's cut).
TRACK_TOLERANCE_PX = 2.0
MATCH_TOLERANCE = 12.0
LOST_TRUST = 0.4
CUT_TRUST = 0.2
MATCH_DISTANCE = 0.6  # a detection within this share of a face's size is that face again
# The mask: an ellipse around the detector's box (brows to mouth) that takes in forehead and
# chin, feathered by a blur of this share of the face's width so no edge shows.
GROW_X, GROW_Y = 0.62, 0.8
FEATHER = 0.18

Box = tuple[float, float, float, float]  # x, y, w, h


@dataclass(frozen=True)
class Face:
    """One face, in keyframe (dream-size) pixels.

    Attributes:
        x, y, w, h: its box, top left and size.
        seen: the clock of its last detection (``time.perf_counter()`` live, the video's
            own time in a file render).
        until: the clock its protection starts to fade at: when tracking lost it, or
            ``CONFIRM_S`` after it was last seen.
    """

    x: float
    y: float
    w: float
    h: float
    seen: float
    until: float = math.inf

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def weight(self, now: float, *, fade: float = FADE_S) -> float:
        """How much protection it gets at ``now``: 1 until ``until``, then down to 0 over
        ``fade`` seconds."""
        lost = now - self.until
        if lost <= 0:
            return 1.0
        return max(0.0, 1.0 - lost / fade) if fade > 0 else 0.0

    def lost_at(self, clock: float) -> Face:
        """This face, its protection fading from ``clock`` on (if not already)."""
        return replace(self, until=min(self.until, clock))


class HaarDetector:
    """Faces by OpenCV's Haar cascade, on the frame scaled down to ``short_side``; where the
    upright frame shows none, on the frame turned by each of ``tilts`` degrees.

    Raises:
        FaceDetectorError: this OpenCV has no cascade classifier or no cascade data (5.x).
    """

    def __init__(
        self,
        cascade: str = CASCADE,
        *,
        short_side: int = DETECT_SHORT,
        tilts: tuple[float, ...] = TILTS,
    ) -> None:
        self.short_side = short_side
        self.tilts = tilts
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

    def detect(self, frame: Frame, *, tilts: tuple[float, ...] | None = None) -> list[Box]:
        """Faces in ``frame`` ((H, W, 3) uint8 BGR): boxes (x, y, w, h) in its own pixels.

        Args:
            tilts: where the upright frame shows none, the degrees to turn it by, one after
                the other until a face shows; None: this detector's ``tilts``.
        """
        h, w = frame.shape[:2]
        scale = min(1.0, self.short_side / min(h, w))
        small = frame
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        boxes = self._find(gray)
        for degrees in self.tilts if tilts is None else tilts:
            if boxes:
                break
            boxes = self._find_tilted(gray, degrees)
        return [(x / scale, y / scale, bw / scale, bh / scale) for x, y, bw, bh in boxes]

    def _find(self, gray: np.ndarray) -> list[Box]:
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(MIN_FACE,) * 2
        )
        return [(float(x), float(y), float(w), float(h)) for x, y, w, h in found]

    def _find_tilted(self, gray: np.ndarray, degrees: float) -> list[Box]:
        """Faces in ``gray`` turned ``degrees`` about its centre, as upright boxes of the same
        size around where their centres lie in ``gray``."""
        h, w = gray.shape
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        turned = cv2.warpAffine(gray, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(matrix)
        boxes = []
        for x, y, bw, bh in self._find(turned):
            cx, cy = back @ np.array([x + bw / 2, y + bh / 2, 1.0])
            boxes.append((float(cx) - bw / 2, float(cy) - bh / 2, bw, bh))
        return boxes


class FaceTracker:
    """The faces of each keyframe: detected, followed by flow in between, kept while the flow
    follows them. The dream thread only.

    Args:
        detector: finds faces in a frame; a ``HaarDetector`` when None.
        detect_every: seconds (of the frames' clock) between two detections.
        confirm: a face the detector has not seen for this long is dropped.
        fade: a dropped face's protection fades over this long.
    """

    def __init__(
        self,
        detector: HaarDetector | None = None,
        *,
        detect_every: float = DETECT_EVERY_S,
        confirm: float = CONFIRM_S,
        fade: float = FADE_S,
    ) -> None:
        self.detector = detector if detector is not None else HaarDetector()
        self.detect_every = detect_every
        self.confirm = confirm
        self.fade = fade
        self.faces: tuple[Face, ...] = ()
        self.detections = 0  # how many times the detector ran
        self.cuts = 0  # scene cuts that dropped the faces
        self._estimator = FlowEstimator()
        self._coords: np.ndarray | None = None
        self._gray: np.ndarray | None = None  # the previous keyframe's, (h, w) uint8
        self._detected_at = -math.inf
        self._searched = False  # the first keyframe (or the first after a cut) was searched
        self._turn = 0  # which turned picture a search looks at next

    def update(self, frame: Frame, gray: np.ndarray, clock: float) -> tuple[Face, ...]:
        """The faces of a new keyframe.

        Args:
            frame: the keyframe's frame, (H, W, 3) uint8 BGR, any size.
            gray: the keyframe at the dream size, (h, w) uint8; boxes are in its pixels.
            clock: its capture time.
        """
        faces = self.faces
        if faces and self._gray is not None and self._gray.shape == gray.shape:
            faces = self._follow(faces, self._gray, gray, clock)
        self._gray = gray
        if clock - self._detected_at >= self.detect_every or clock < self._detected_at:
            self._detected_at = clock
            self.detections += 1
            sx = gray.shape[1] / frame.shape[1]
            sy = gray.shape[0] / frame.shape[0]
            found = self.detector.detect(frame, tilts=self._tilts(faces, clock))
            boxes = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in found]
            faces = self._match(faces, boxes, clock)
        self.faces = tuple(f for f in faces if f.weight(clock, fade=self.fade) > 0)
        return self.faces

    def _tilts(self, faces: tuple[Face, ...], clock: float) -> tuple[float, ...] | None:
        """The turned pictures this detection looks at: none while a face is followed (the
        flow keeps it); all of them on the first keyframe and after a cut (the first dream
        goes out with its faces known); otherwise one at a time, in turn, so a picture with
        no face costs at most two cascade runs a detection."""
        if any(f.until > clock for f in faces):
            return ()
        if not self._searched:
            self._searched = True
            return None
        tilts = self.detector.tilts
        self._turn += 1
        return (tilts[self._turn % len(tilts)],) if tilts else ()

    def _follow(
        self, faces: tuple[Face, ...], previous: np.ndarray, current: np.ndarray, clock: float
    ) -> tuple[Face, ...]:
        """Each face moved by the median flow inside its box, from ``previous`` to ``current``;
        lost where the flow no longer follows it; none left after a cut."""
        h, w = current.shape
        if self._coords is None or self._coords.shape[:2] != (h, w):
            self._coords = grid(h, w)
        back = self._estimator.flow(current, previous)  # current(x) ~ previous(x + back)
        fwd = self._estimator.flow(previous, current)  # previous(x) ~ current(x + fwd)
        trust = consistency(back, fwd, self._coords, tolerance=TRACK_TOLERANCE_PX)
        mismatch = np.abs(current.astype(np.float32) - warp(previous, back, self._coords))
        trust *= np.clip(2.0 - mismatch / MATCH_TOLERANCE, 0.0, 1.0)  # (h, w) in [0, 1]
        if float(trust.mean()) < CUT_TRUST:
            self.cuts += 1
            self._detected_at, self._searched = -math.inf, False  # search this keyframe fully
            return ()
        moved = []
        for face in faces:
            if face.until <= clock:  # already fading: left where it was lost
                moved.append(face)
                continue
            inside = _inner(face, w, h)
            if inside is None:
                moved.append(face.lost_at(clock))
                continue
            dx, dy = np.median(fwd[inside].reshape(-1, 2), axis=0)
            face = replace(face, x=face.x + float(dx), y=face.y + float(dy))
            there = _inner(face, w, h)
            if there is None or float(trust[there].mean()) < LOST_TRUST:
                face = face.lost_at(clock)
                self._detected_at = -math.inf  # look again at once: it may be right there
            moved.append(face)
        return tuple(moved)

    def _match(self, faces: tuple[Face, ...], boxes: list[Box], clock: float) -> tuple[Face, ...]:
        """The detections as faces: each takes over the nearest followed face (a new one
        otherwise); followed faces no detection took are kept as they were."""
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
            out.append(Face(x, y, w, h, seen=clock, until=clock + self.confirm))
        return (*out, *left)


def _inner(face: Face, width: int, height: int) -> tuple[slice, slice] | None:
    """The inner 60% of ``face``'s box within a ``width`` x ``height`` picture, or None when
    its centre has left the picture or less than a third of that inner box is in it."""
    cx, cy = face.centre
    if not (0 <= cx < width and 0 <= cy < height):
        return None
    x0, x1 = cx - 0.3 * face.w, cx + 0.3 * face.w
    y0, y1 = cy - 0.3 * face.h, cy + 0.3 * face.h
    cx0, cx1 = max(0, round(x0)), min(width, round(x1) + 1)
    cy0, cy1 = max(0, round(y0)), min(height, round(y1) + 1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    if (cx1 - cx0) * (cy1 - cy0) < ((x1 - x0) * (y1 - y0)) / 3:
        return None
    return slice(cy0, cy1), slice(cx0, cx1)


def face_mask(
    shape: tuple[int, ...],
    faces: tuple[Face, ...],
    now: float,
    *,
    fade: float = FADE_S,
    scale: float = 1.0,
) -> np.ndarray:
    """A soft mask over the faces: (h, w) float32 in [0, 1], 1 on a face, feathered around it.

    Args:
        shape: the mask's (h, w, ...).
        faces: boxes in pixels of a picture ``scale`` times smaller than the mask.
        now: the clock the fade is measured at.
    """
    h, w = shape[:2]
    mask = np.zeros((h, w), np.float32)
    for face in faces:
        weight = face.weight(now, fade=fade)
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
    if not protecting(strength):
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
