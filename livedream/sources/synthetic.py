"""A moving synthetic scene for tests, benchmarks and soak runs."""

from __future__ import annotations

import cv2
import numpy as np

from livedream.errors import SourceError
from livedream.media import Frame
from livedream.sources.base import Source


class SyntheticSource(Source):
    """A moving synthetic scene for tests, benchmarks and soak runs.

    A colour gradient with a few shapes that move a few pixels per frame; frame ``i`` is the
    same on every run (``frame_at(i)``). Ends after ``frames`` frames when given.
    """

    def __init__(
        self,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30.0,
        frames: int | None = None,
        live: bool = True,
    ) -> None:
        super().__init__("synthetic")
        if width < 16 or height < 16:
            raise SourceError(f"synthetic source size must be at least 16x16, got {width}x{height}")
        self.width = width
        self.height = height
        self.fps = float(fps)
        self.frame_count = frames
        self.is_live = live
        self._index = 0
        ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        background = np.empty((height, width, 3), np.float32)  # (H, W, 3) float32 BGR in [0, 1]
        background[..., 0] = 0.25 + 0.5 * xs
        background[..., 1] = 0.2 + 0.4 * ys
        background[..., 2] = 0.7 - 0.4 * xs * ys
        # A fine checker texture gives optical flow and the dream something to hold on to.
        checker = ((np.arange(height)[:, None] // 8 + np.arange(width)[None, :] // 8) % 2) * 0.06
        background += checker[..., None].astype(np.float32)
        self._background: Frame = np.clip(background * 255.0, 0, 255).astype(np.uint8)

    def frame_at(self, index: int) -> Frame:
        """Frame number ``index`` of the scene, ``(H, W, 3)`` uint8 BGR."""
        w, h = self.width, self.height
        frame = self._background.copy()
        s = min(w, h)
        # A disc moving left to right and back, 3 px per frame.
        span = max(1, w - s // 2)
        x = abs((index * 3) % (2 * span) - span) + s // 4
        cv2.circle(frame, (x % w, h // 3), s // 6, (40, 200, 250), -1, cv2.LINE_AA)
        # A square drifting down, 2 px per frame.
        y = (index * 2) % (h + s // 4) - s // 8
        x0 = w // 2
        cv2.rectangle(frame, (x0, y), (x0 + s // 5, y + s // 5), (200, 60, 40), -1)
        # A bar rotating about the centre, 2 degrees per frame.
        angle = np.deg2rad(index * 2.0)
        cx, cy, r = w // 2, 2 * h // 3, s // 4
        dx, dy = int(r * np.cos(angle)), int(r * np.sin(angle))
        cv2.line(frame, (cx - dx, cy - dy), (cx + dx, cy + dy), (30, 30, 30), max(2, s // 40))
        return frame

    def _read(self) -> Frame | None:
        if self.frame_count is not None and self._index >= self.frame_count:
            return None
        frame = self.frame_at(self._index)
        self._index += 1
        return frame
