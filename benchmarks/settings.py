"""One benchmark run's settings, and the constants every section of ``fps.py`` shares.

Not run on its own: ``benchmarks/fps.py`` builds ``Settings`` from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from livedream.config import DreamConfig

SHARED_CLIP = Path(__file__).resolve().parents[1].parent / "shared/media/bikes.mp4"
BUNDLED_CLIP = Path(__file__).resolve().parents[1] / "livedream/data/sample.mp4"
BURN_IN_FRAMES = 3  # the first frames trace and compile the step: not timed
LIVE_PACE_FPS = 30.0  # a webcam's rate


@dataclass(frozen=True)
class Settings:
    """One benchmark run, from the flags."""

    model: str
    layers: tuple[str, ...]  # resolved: never empty
    dream_size: tuple[int, int]  # (w, h)
    steps: int
    clip: Path
    frames: int  # measured frames (after the burn-in) of each clip section
    quick: bool
    variants: tuple[tuple[str, str], ...] | None  # None: the default plan
    json_path: Path | None

    def dream_config(self, **changes: Any) -> DreamConfig:
        """The live defaults with this run's model, layers, size and steps."""
        config = DreamConfig(
            model=self.model, layers=self.layers, steps=self.steps, dream_size=self.dream_size
        )
        return replace(config, **changes)
