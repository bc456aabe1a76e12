"""What sources and sinks share: the frame type, its checks, and the file kinds.

A frame everywhere in livedream is ``(H, W, 3)`` uint8 BGR. This module sits below both
``sources`` and ``sinks`` so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

Frame = np.ndarray[Any, np.dtype[np.uint8]]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_FPS = 30.0  # a camera or stream that reports no rate: what most webcams deliver


def is_image_path(path: str | Path | None) -> bool:
    """True when ``path`` names a still image (by its extension)."""
    return path is not None and Path(path).suffix.lower() in IMAGE_EXTENSIONS


def check_frame(frame: np.ndarray[Any, Any], expected: tuple[int, int, int] | None = None) -> None:
    """Raises unless ``frame`` is ``(H, W, 3)`` uint8 (of shape ``expected`` when given).

    Raises:
        TypeError: another dtype.
        ValueError: another shape.
    """
    if frame.dtype != np.uint8:
        raise TypeError(f"unexpected frame dtype: {frame.dtype} != uint8")
    if expected is None:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"unexpected frame shape: {frame.shape} != (H, W, 3)")
    elif frame.shape != expected:
        raise ValueError(f"unexpected frame shape: {frame.shape} != {expected}")


def as_bgr(frame: np.ndarray[Any, Any]) -> Frame:
    """Any decoded frame as ``(H, W, 3)`` uint8 BGR (some cameras and files give grey or BGRA)."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.dtype == np.uint16:  # 16-bit PNG/TIFF stills
        frame = (frame // 257).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame
