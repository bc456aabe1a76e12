"""Section of ``fps.py``: ms per dream step of each model ``--model auto`` chooses between.

One step at 320x240 of ``vgg16_hed`` on ``block4_conv3`` (the bundled model's default) and of
``inception_v3`` on ``mixed3,mixed5`` (the seed's), each at the precision and compile mode
``auto`` picks here. Inception runs with randomly initialised weights, saved and loaded as a
``--weights`` file: nobody here can fetch the ImageNet ones, and a step costs the same whatever
the weights' values. Both models are built and burnt in first, then timed in interleaved rounds
(one call each a round) so that load from other programs hits both alike; the median counts.

Not run on its own: see ``fps.py``. For this section alone:

    PYTHONPATH=$PWD python -c "import sys; sys.path.insert(0, 'benchmarks'); \\
        from model_cost import main; main()"
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livedream.config import DreamConfig
from settings import BUNDLED_CLIP, SHARED_CLIP

SIZE = (320, 240)  # (w, h): the figures and the live default's size
MODEL_CASES = (("vgg16_hed", ("block4_conv3",)), ("inception_v3", ("mixed3", "mixed5")))
BURN_IN = 2  # the first calls trace the step


def random_inception(folder: Path) -> Path:
    """InceptionV3 with randomly initialised weights, as a Keras weights file in ``folder``."""
    import keras

    keras.utils.set_random_seed(0)
    path = folder / "random_inception_v3.weights.h5"
    keras.applications.InceptionV3(include_top=False, weights=None).save_weights(path)
    return path


def measure_models(
    image: np.ndarray, *, rounds: int, section: Callable[[str, str], None] | None = None
) -> dict[str, float]:
    """Median ms of one dream step of each of ``MODEL_CASES`` on ``image``.

    Args:
        image: (h, w, 3) float32 BGR in [0, 255], the size to time at.
        rounds: timed calls per model, interleaved.
        section: the run's section clock (None: silent).

    Returns:
        {model name: median ms per step}.
    """
    from livedream.dream import build_step
    from livedream.resolve import resolve_here

    say = section or (lambda _name, _text: None)
    step_size = DreamConfig().step_size * 255.0
    h, w = image.shape[:2]
    timed: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="livedream-bench-") as folder:
        say("model_cost", f"step per model at {w}x{h}: build, {BURN_IN} burn-in calls each")
        steps = []
        for name, layers in MODEL_CASES:
            weights = random_inception(Path(folder)) if name == "inception_v3" else None
            config = DreamConfig(model=name, layers=layers, weights=weights, dream_size=(w, h))
            step = build_step(resolve_here(config))
            for i in range(BURN_IN):
                step(image, steps=1, step_size=step_size, seed=(0, i))
            steps.append((name, step))
            timed[name] = []
        say("model_cost_timing", f"step per model: {rounds} interleaved rounds")
        for i in range(rounds):
            for name, step in steps:
                started = time.perf_counter()
                step(image, steps=1, step_size=step_size, seed=(1, i))  # numpy back: synced
                timed[name].append(1000.0 * (time.perf_counter() - started))
        steps.clear()
        gc.collect()
    return {name: float(np.median(ms)) for name, ms in timed.items()}


def main() -> None:  # pragma: no cover - a manual run of this section alone
    import cv2

    from livedream.runtime import import_tensorflow
    from machine import read_frames

    import_tensorflow(False)
    clip = SHARED_CLIP if SHARED_CLIP.is_file() else BUNDLED_CLIP
    frame = cv2.resize(read_frames(clip, 1)[0][0], SIZE).astype(np.float32)
    for name, ms in measure_models(frame, rounds=5).items():
        print(f"{name}: {ms:.1f} ms a step at {SIZE[0]}x{SIZE[1]}")
