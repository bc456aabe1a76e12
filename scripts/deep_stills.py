"""Stills of the deep looks for the README: one frame of the bundled clip dreamed with 100
steps at one scale (the seed's look) and with 4 octaves of 25 steps, side by side.

    python scripts/deep_stills.py            # writes docs/deep_looks.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from livedream.config import DeepConfig, DreamConfig
from livedream.deep.octaves import FrameDreamer
from livedream.resolve import resolve_here
from livedream.runtime import import_tensorflow, quiet_libraries
from livedream.sources import VideoFileSource

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "livedream" / "data" / "sample.mp4"
OUT = ROOT / "docs" / "deep_looks.jpg"
FRAME = 100  # a frame in the clip's longest shot
STEPS = 100


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> int:
    quiet_libraries(False)
    import_tensorflow(False)
    with VideoFileSource(CLIP) as source:
        for _ in range(FRAME):
            source.read()
        frame = source.read()
    assert frame is not None
    frame = cv2.resize(frame, (320, 136), interpolation=cv2.INTER_AREA)
    dream = resolve_here(DreamConfig(steps=STEPS, dream_size=(320, 136)))
    single = FrameDreamer(dream, DeepConfig(octaves=1))
    octaves = FrameDreamer(dream, DeepConfig(octaves=4, octave_steps=STEPS // 4), step=single.step)
    tiles = [
        label(frame, "input"),
        label(single(frame, FRAME), f"--steps {STEPS}"),
        label(octaves(frame, FRAME), f"--octaves 4 --octave-steps {STEPS // 4}"),
    ]
    OUT.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(OUT), np.hstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
