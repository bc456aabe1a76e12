"""Makes the README's gallery: one frame of the bundled clip in every look the keys give.

    python scripts/gallery.py                  # docs/looks.png (and docs/guide_rings.png)
    python scripts/gallery.py --frame 60 --out /tmp/looks.png

Each tile is the frame dreamed as a photo shown live would be after ``--frames`` frames: the
original, every layer preset (``l``), every channel preset (``c``) and one guide (``g``): a
synthetic pattern of coloured rings drawn here, written to ``docs/guide_rings.png`` so the
README's command line can use it. Runs offline (vgg16_hed), about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from livedream.config import DreamConfig
from livedream.dream import Dreamer, DreamStep, build_step
from livedream.models import Channels, get_spec
from livedream.resolve import resolve_here

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "livedream" / "data" / "sample.mp4"
TILE = (320, 136)  # each look's tile (w, h): half the sample clip's 640x272
LABEL_H = 22  # the caption strip under each tile
COLUMNS = 3

Look = tuple[str, DreamConfig]  # (caption, the dream that makes it)


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of the video at ``path``, (H, W, 3) uint8 BGR."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"error: cannot read frame {index} of {path}")
    return frame  # type: ignore[no-any-return]


def rings(width: int = 320, height: int = 240) -> np.ndarray:
    """The guide: overlapping rings of saturated colour, like peacock eyes; (H, W, 3) uint8."""
    rng = np.random.default_rng(3)
    image = np.full((height, width, 3), 30, np.uint8)
    for _ in range(14):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(20, 60))
        for r in range(radius, 0, -6):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(image, centre, r, colour, -1, cv2.LINE_AA)
    return image


def looks(base: DreamConfig, guide: Path) -> list[Look]:
    """Every look the keys give, with the flags that start a run in it."""
    spec = get_spec(base.model)
    out: list[Look] = []
    for i, layers in enumerate(spec.presets):
        text = ",".join(layers)
        caption = f"l: --layers {text}" + (" (default)" if i == 0 else "")
        out.append((caption, replace(base, layers=layers)))
    for preset in spec.channel_presets:
        numbers = ",".join(map(str, preset.channels))
        caption = f"c {preset.name}: --channels {preset.layer}:{numbers}"
        channels: Channels = preset.selection
        out.append((caption, replace(base, layers=(preset.layer,), channels=channels)))
    out.append((f"g: --guide {guide.relative_to(ROOT)}", replace(base, guide=guide)))
    return out


def dream(
    frame: np.ndarray, config: DreamConfig, steps: dict[object, DreamStep], n: int
) -> np.ndarray:
    """``frame`` dreamed ``n`` times over, carrying the dream as a live run does."""
    key = (config.layers, config.guide)
    if key not in steps:
        steps[key] = build_step(resolve_here(config))
    dreamer = Dreamer(resolve_here(config), step=steps[key])
    out = frame
    for _ in range(n):
        out = dreamer(frame)
    return out


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with ``text`` in a dark strip under it."""
    strip = np.full((LABEL_H, tile.shape[1], 3), 24, np.uint8)
    cv2.putText(
        strip, text, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.vstack([tile, strip])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--input", type=Path, default=SAMPLE, help="the clip to take a frame of")
    parser.add_argument("--frame", type=int, default=120, help="which frame")
    parser.add_argument("--frames", type=int, default=12, help="dreamed frames per look")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "looks.png")
    parser.add_argument(
        "--guide", type=Path, default=ROOT / "docs" / "guide_rings.png", help="written first"
    )
    args = parser.parse_args(argv)
    args.guide.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.guide), rings())
    frame = read_frame(args.input, args.frame)
    # The live defaults at the dream size of a 640x272 clip; steps 3 for a clear look.
    base = DreamConfig(model="vgg16_hed", dream_size=TILE, steps=3)  # the README's pictures
    steps: dict[object, DreamStep] = {}
    tiles = [caption(cv2.resize(frame, TILE, interpolation=cv2.INTER_AREA), "the frame")]
    for text, config in looks(base, args.guide):
        dreamed = dream(frame, config, steps, args.frames)
        tiles.append(caption(cv2.resize(dreamed, TILE, interpolation=cv2.INTER_AREA), text))
        print(f"dreamed {text}", flush=True)
    while len(tiles) % COLUMNS:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
