"""Makes the README's before/after picture from a demo render.

    livedream --demo && python scripts/demo_frame.py dream.mp4 --frame 200

Writes ``docs/demo_frame.png``: the input frame on top, the dreamed frame below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "livedream" / "data" / "sample.mp4"


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of the video at ``path`` as (H, W, 3) uint8 BGR."""
    capture = cv2.VideoCapture(str(path))
    try:
        frame: np.ndarray | None = None
        for _ in range(index + 1):
            ok, frame = capture.read()
            if not ok or frame is None:
                raise SystemExit(f"error: {path} has fewer than {index + 1} frames")
        assert frame is not None
        return frame
    finally:
        capture.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dream", type=Path, help="the demo output (dream.mp4)")
    parser.add_argument("--input", type=Path, default=SAMPLE, help="the clip it was made from")
    parser.add_argument("--frame", type=int, default=200, help="which frame to show")
    parser.add_argument("--out", type=Path, default=Path("docs/demo_frame.png"))
    args = parser.parse_args(argv)
    before = read_frame(args.input, args.frame)
    after = read_frame(args.dream, args.frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack([before, after]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
