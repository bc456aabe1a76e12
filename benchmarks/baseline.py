"""Section 2 of ``fps.py``: the TensorFlow DeepDream tutorial's way of dreaming, frame by frame.

The tutorial's ``DeepDream`` module (float32, ``tf.function``, no XLA, no temporal carry) with
our model and layers. Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from livedream.config import DreamConfig
from livedream.errors import UsageError
from settings import BURN_IN_FRAMES, Settings

if TYPE_CHECKING:
    from livedream.models import FeatureModel


@dataclass
class BaselineFigures:
    """The tutorial loop over the clip, after ``BURN_IN_FRAMES`` untimed frames."""

    baseline_frame_ms: float  # mean per frame, read to write
    baseline_dream_ms: float  # mean of the K dream steps alone
    baseline_fps: float  # 1000 / baseline_frame_ms
    baseline_frames: int  # timed frames


def tutorial_deepdream(features: FeatureModel) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """The TensorFlow DeepDream tutorial's ``DeepDream`` module, fed to our feature model.

    Images live in the tutorial's space: (H, W, 3) float32 in [-1, 1] (BGR here, since our
    model takes BGR); ``features`` wants BGR in [0, 255], hence ``(img + 1) * 127.5``.
    """
    import tensorflow as tf

    def model(img_batch: Any) -> list[Any]:
        return features.features((img_batch + 1.0) * 127.5)

    def calc_loss(img: Any, model: Callable[[Any], list[Any]]) -> Any:
        # Pass forward the image through the model to retrieve the activations.
        # Converts the image into a batch of size 1.
        img_batch = tf.expand_dims(img, axis=0)
        layer_activations = model(img_batch)  # always a list here: no single-tensor case
        losses = []
        for act in layer_activations:
            loss = tf.math.reduce_mean(act)
            losses.append(loss)
        return tf.reduce_sum(losses)

    class DeepDream(tf.Module):  # type: ignore[misc]  # tf is untyped
        def __init__(self, model: Callable[[Any], list[Any]]) -> None:
            self.model = model

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=(
                tf.TensorSpec(shape=[None, None, 3], dtype=tf.float32),
                tf.TensorSpec(shape=[], dtype=tf.int32),
                tf.TensorSpec(shape=[], dtype=tf.float32),
            )
        )
        def __call__(self, img: Any, steps: Any, step_size: Any) -> tuple[Any, Any]:
            loss = tf.constant(0.0)
            for _ in tf.range(steps):
                with tf.GradientTape() as tape:
                    # `GradientTape` only watches `tf.Variable`s by default.
                    tape.watch(img)
                    loss = calc_loss(img, self.model)
                gradients = tape.gradient(loss, img)
                gradients /= tf.math.reduce_std(gradients) + 1e-8
                img = img + gradients * step_size
                img = tf.clip_by_value(img, -1, 1)
            return loss, img

    return DeepDream(model)


def run_baseline(settings: Settings) -> BaselineFigures:
    """The tutorial's way, frame by frame: read, resize, dream K steps, resize back, write."""
    import tensorflow as tf

    from livedream.models import load_model
    from livedream.sinks import NullSink

    deepdream = tutorial_deepdream(load_model(settings.model, settings.layers, dtype="float32"))
    # Same pixel move per unit-std gradient as livedream: the tutorial's range is 2 wide.
    step_size = DreamConfig().step_size * 2.0

    def run_deep_dream_simple(img: np.ndarray, steps: int) -> np.ndarray:
        img = img.astype(np.float32) / 127.5 - 1.0  # inception_v3.preprocess_input
        tensor = tf.convert_to_tensor(img)
        _loss, tensor = deepdream(tensor, tf.constant(steps), tf.constant(step_size))
        result = tf.cast(255 * (tensor + 1.0) / 2.0, tf.uint8)  # deprocess
        return result.numpy()  # type: ignore[no-any-return]

    wanted = BURN_IN_FRAMES + settings.frames
    cap = cv2.VideoCapture(str(settings.clip))
    frame_ms: list[float] = []
    dream_ms: list[float] = []
    try:
        with NullSink() as sink:
            while len(frame_ms) < wanted:
                started = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                small = cv2.resize(frame, settings.dream_size, interpolation=cv2.INTER_AREA)
                dream_started = time.perf_counter()
                dreamed = run_deep_dream_simple(small, settings.steps)
                dream_ms.append(1000.0 * (time.perf_counter() - dream_started))
                sink.write(cv2.resize(dreamed, (w, h), interpolation=cv2.INTER_LINEAR))
                frame_ms.append(1000.0 * (time.perf_counter() - started))
    finally:
        cap.release()
    timed = frame_ms[BURN_IN_FRAMES:]
    if not timed:
        raise UsageError(
            f"{settings.clip} has {len(frame_ms)} frames: need more than {BURN_IN_FRAMES}"
        )
    return BaselineFigures(
        baseline_frame_ms=float(np.mean(timed)),
        baseline_dream_ms=float(np.mean(dream_ms[BURN_IN_FRAMES:])),
        baseline_fps=1000.0 / float(np.mean(timed)),
        baseline_frames=len(timed),
    )
