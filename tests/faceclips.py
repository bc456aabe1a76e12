"""Footage of a face that turns, tilts, moves and enters, made from scikit-image's astronaut
(a real face; no clip of a real head turning ships in a package).

A turn is the head as a cylinder turned about its upright axis: what the camera sees of it is
re-projected, so the nose moves towards the turn and the far cheek narrows, as on a real head;
what the cylinder cannot show (an ear coming into view, a real profile's outline) it cannot
show. A tilt rotates the picture about the face. Frames are (H, W, 3) uint8 BGR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from livedream.sources import Source

# The astronaut's face in a 256x256 astronaut (x, y, w, h), as the Haar detector finds it.
PHOTO_FACE = (86, 31, 50, 50)


def astronaut(size: int) -> np.ndarray:
    """The astronaut, ``size`` x ``size``: (size, size, 3) uint8 BGR."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)


def turn(image: np.ndarray, box: tuple[float, ...], yaw: float) -> np.ndarray:
    """``image`` with the head in ``box`` (x, y, w, h) turned ``yaw`` degrees (> 0: towards
    the picture's right), the head taken as a cylinder 1.6 face widths across."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    cx, r = x + bw / 2, 0.8 * bw
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u = np.clip((xs - cx) / r, -1.0, 1.0)
    phi = np.clip(np.arcsin(u) - np.radians(yaw), -np.pi / 2, np.pi / 2)
    shift = (cx + r * np.sin(phi)) - xs
    shift[np.abs(xs - cx) >= r] = 0.0
    # The head only: from above the brow to below the chin, faded over a few rows.
    top, bottom = y - 0.8 * bh, y + 1.2 * bh
    rows = np.clip(np.minimum(ys - top, bottom - ys) / (0.15 * bh), 0.0, 1.0)
    maps_x = (xs + shift * rows).astype(np.float32)
    return cv2.remap(image, maps_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def tilt(image: np.ndarray, centre: tuple[float, float], degrees: float) -> np.ndarray:
    """``image`` rotated ``degrees`` (> 0: anticlockwise) about ``centre``."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


class CallClip:
    """A video call: the astronaut in a ``width`` x ``height`` frame, her face about a third
    of the picture's height, in front of a grey wall.

    Args:
        width, height: the frame's size.
        x: where the photo's left edge sits (px); the photo is as tall as the frame.
    """

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.width, self.height = width, height
        self.photo = astronaut(height * 3 // 2)
        scale = self.photo.shape[0] / 256
        fx, fy, fw, fh = PHOTO_FACE
        self._face = (fx * scale, fy * scale, fw * scale, fh * scale)

    def face_box(self, x: float = 0.0, yaw: float = 0.0) -> tuple[float, float, float, float]:
        """The face's box in a frame with the photo's left edge at ``x``, the head turned
        ``yaw`` degrees: the upright box moved as far as the turn moves the face's centre."""
        fx, fy, fw, fh = self._face
        return fx + x + 0.8 * fw * float(np.sin(np.radians(yaw))), fy, fw, fh

    def frame(self, x: float = 0.0, *, yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
        """The photo's left edge at ``x``, the head turned ``yaw`` and tilted ``roll``
        degrees: (height, width, 3) uint8 BGR."""
        matrix = np.float32([[1, 0, x], [0, 1, 0]])
        frame = cv2.warpAffine(
            self.photo, matrix, (self.width, self.height), borderValue=(96, 96, 96)
        )
        box = self.face_box(x)  # where the upright face is
        if yaw:
            frame = turn(frame, box, yaw)
        if roll:
            frame = tilt(frame, (box[0] + box[2] / 2, box[1] + box[3] / 2), roll)
        return frame


class FramesSource(Source):
    """The frames ``make(i)`` for i in 0..count-1, at ``fps``; ``live``: a camera's."""

    def __init__(
        self, make: Callable[[int], np.ndarray], count: int, *, fps: float = 30.0, live: bool
    ) -> None:
        super().__init__("face clip")
        first = make(0)
        self.height, self.width = first.shape[:2]
        self.fps, self.is_live = fps, live
        self._make, self._count, self._index = make, count, 0

    def _read(self) -> np.ndarray | None:
        if self._index >= self._count:
            return None
        frame = self._make(self._index)
        self._index += 1
        return frame


def face_and_background(
    out: np.ndarray, frame: np.ndarray, box: Sequence[float]
) -> tuple[float, float]:
    """The dream on the face and on the background, as issue 20 measures them: the mean
    |out - in| over the inner 60% of the face's box, and over what lies outside the box grown
    by half its size on each side."""
    diff = np.abs(out.astype(np.float32) - frame.astype(np.float32)).mean(axis=2)
    h, w = diff.shape
    x, y, bw, bh = box
    inner = diff[
        max(0, round(y + 0.2 * bh)) : round(y + 0.8 * bh),
        max(0, round(x + 0.2 * bw)) : round(x + 0.8 * bw),
    ]
    outside = np.ones((h, w), bool)
    outside[
        max(0, round(y - bh / 2)) : round(y + 1.5 * bh),
        max(0, round(x - bw / 2)) : round(x + 1.5 * bw),
    ] = False
    return float(inner.mean()), float(diff[outside].mean())
