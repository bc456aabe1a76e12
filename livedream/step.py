"""The dream step: K DeepDream gradient-ascent steps as one compiled function per dream shape.

It never retraces per frame: the step count, strength, jitter seed, channel weights and guide
are inputs of the compiled function, not constants baked into it. ``run_steps_in_slices`` runs
many steps (a photo's octave, a deep render's frame) as calls of at most about a second each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import tensorflow as tf

from livedream.errors import AcceleratorMemoryError, ChannelRangeError
from livedream.models import Channels, FeatureModel, load_model

if TYPE_CHECKING:
    from livedream.resolve import ResolvedDream

logger = logging.getLogger(__name__)

KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


# Guided dreaming compares every activation vector of the frame with every one of the guide:
# an (N, M) matrix of dot products per step. Capping M keeps it well under the step's own cost
# (320x240 at block3_conv3: 4800 x 1024 x 256 multiply-adds, ~1 GFLOP against ~85).
MAX_GUIDE_VECTORS = 1024


class DreamStep:
    """K DeepDream gradient-ascent steps, compiled once per dream shape.

    Loss = sum over layers of the objective (in float32). The plain objective is the mean
    over positions of the channel-weighted sum of activations (all-ones/C weights: the mean
    activation; chosen channels: the mean of those only). The guided one (the deepdream
    notebook's "Controlling dreams") is the mean over positions of the largest dot product of
    the frame's activation vector with any of the guide's. A scalar ``guide weight`` (0 or 1)
    picks between them. Channel weights, guide vectors and guide weight are inputs of the
    compiled function, so switching channels or the guide never retraces.

    Each step rolls the image by a random (seeded, stateless) offset, takes the gradient,
    divides it by its standard deviation + 1e-8, adds it times the step size, rolls back and
    clips to [0, 255].

    Args:
        model: the network, truncated to the dreamed layers.
        compile_mode: graph, xla or eager.
        jitter: max random roll in pixels.
        guide: the guide image, (H, W, 3) uint8 BGR, or None; its features are computed once
            per dream size (it is resized to it).
        gpu: it runs on a GPU (an out-of-memory error says so).

    Thread: the thread that calls it (the dream thread); TensorFlow objects stay there.
    """

    def __init__(
        self,
        model: FeatureModel,
        *,
        compile_mode: str = "graph",
        jitter: int = 16,
        guide: np.ndarray | None = None,
        gpu: bool = False,
    ) -> None:
        self.model = model
        self.compile_mode = compile_mode
        self.jitter = jitter
        self.guide = guide
        self.gpu = gpu
        self._compiled: dict[tuple[int, int], Callable[..., Any]] = {}
        self.traces = 0  # how many times a graph was traced: once per dream shape
        self.seconds_per_step: dict[tuple[int, int], float] = {}  # the last call's, per shape
        self._loss_scale = 1024.0 if model.dtype == "mixed_float16" else 1.0
        self.channel_counts = model.channel_counts()
        self._channel_weights: dict[Channels, tuple[tf.Tensor, ...]] = {}
        self._guide_features: dict[tuple[int, int], tuple[tf.Tensor, ...]] = {}
        # No guide (or the guide off): one zero vector per layer, a fixed cheap stand-in.
        self._no_guide = tuple(tf.zeros([1, c], tf.float32) for c in self.channel_counts)

    def channel_weights(self, channels: Channels = ()) -> tuple[tf.Tensor, ...]:
        """Per-layer (C,) float32 weights summing to 1: the mean of the chosen channels.

        A layer named in ``channels`` weighs its channels 1/n each; when some dreamed layer is
        named, the others weigh nothing (only the chosen channels are dreamed); when none is,
        every channel weighs 1/C (the plain mean).

        Raises:
            ChannelRangeError: a channel number beyond the layer's channel count.
        """
        weights = self._channel_weights.get(channels)
        if weights is not None:
            return weights
        chosen = {layer: numbers for layer, numbers in channels if layer in self.model.layers}
        vectors = []
        for layer, count in zip(self.model.layers, self.channel_counts, strict=True):
            numbers = chosen.get(layer)
            if not chosen:
                vector = np.full(count, 1.0 / count, np.float32)
            else:
                vector = np.zeros(count, np.float32)
                if numbers:
                    bad = [c for c in numbers if not 0 <= c < count]
                    if bad:
                        raise ChannelRangeError(self.model.name, layer, count, bad[0])
                    vector[list(numbers)] = 1.0 / len(numbers)
            vectors.append(tf.constant(vector))  # (C,) float32
        weights = tuple(vectors)
        self._channel_weights[channels] = weights
        return weights

    def set_guide(self, guide: np.ndarray | None) -> None:
        """A new guide, (H, W, 3) uint8 BGR, or None; its features are computed on next use
        (never a retrace: they are an input). Thread: the dream thread."""
        self.guide = guide
        self._guide_features.clear()

    def guide_features(self, height: int, width: int) -> tuple[tf.Tensor, ...]:
        """The guide's activation vectors at each layer for a (height, width) dream.

        Returns:
            One (M, C) float32 tensor per layer, M <= ``MAX_GUIDE_VECTORS``; the zero stand-in
            when there is no guide. Computed once per dream size.
        """
        if self.guide is None:
            return self._no_guide
        key = (height, width)
        features = self._guide_features.get(key)
        if features is None:
            guide = cv2.resize(self.guide, (width, height), interpolation=cv2.INTER_AREA)
            activations = self.model.features(tf.constant(guide[None], tf.float32))
            vectors = []
            for a in activations:
                flat = tf.reshape(tf.cast(a[0], tf.float32), [-1, a.shape[-1]])  # (M, C)
                if flat.shape[0] > MAX_GUIDE_VECTORS:  # an even spread over the guide
                    picks = np.linspace(0, flat.shape[0] - 1, MAX_GUIDE_VECTORS).round()
                    flat = tf.gather(flat, picks.astype(np.int32))
                vectors.append(flat)
            features = tuple(vectors)
            self._guide_features[key] = features
        return features

    def _objective(
        self,
        image: tf.Tensor,
        channel_weights: Sequence[tf.Tensor],
        guide: Sequence[tf.Tensor],
        guide_weight: tf.Tensor,
    ) -> tf.Tensor:
        """Scalar float32 loss of a (H, W, 3) float32 BGR image in [0, 255]."""
        activations = self.model.features(image[None])
        losses = []
        for a, cw, g in zip(activations, channel_weights, guide, strict=True):
            flat = tf.reshape(tf.cast(a, tf.float32), [-1, tf.shape(a)[-1]])  # (N, C)
            weighted = flat * cw  # (N, C): the chosen channels only
            plain = tf.reduce_mean(tf.reduce_sum(weighted, axis=1))
            # Each frame vector's best match among the guide's: (N, M) dot products, max over M.
            guided = tf.reduce_mean(tf.reduce_max(tf.matmul(weighted, g, transpose_b=True), 1))
            losses.append((1.0 - guide_weight) * plain + guide_weight * guided)
        return tf.add_n(losses)

    def _run(
        self,
        image: tf.Tensor,
        steps: tf.Tensor,
        step_size: tf.Tensor,
        seed: tf.Tensor,
        channel_weights: Sequence[tf.Tensor],
        guide: Sequence[tf.Tensor],
        guide_weight: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        self.traces += 1  # a Python side effect: runs at trace time only (or every eager call)
        loss = tf.constant(0.0)
        for i in tf.range(steps):
            step_seed = tf.stack([seed[0], seed[1] + i])
            shift = tf.random.stateless_uniform(
                [2], seed=step_seed, minval=-self.jitter, maxval=self.jitter + 1, dtype=tf.int32
            )
            rolled = tf.roll(image, shift=shift, axis=[0, 1])
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(rolled)
                loss = self._objective(rolled, channel_weights, guide, guide_weight)
                # float16 gradients of a mean over ~10^5 activations underflow: scale the loss
                # up (the division by the gradient's std below cancels the scale exactly).
                scaled = loss * self._loss_scale
            gradient = tape.gradient(scaled, rolled)
            gradient = gradient / (tf.math.reduce_std(gradient) + 1e-8)
            rolled = rolled + gradient * step_size
            image = tf.clip_by_value(tf.roll(rolled, shift=-shift, axis=[0, 1]), 0.0, 255.0)
        return image, loss

    def _function(self, height: int, width: int) -> Callable[..., Any]:
        key = (height, width)
        fn = self._compiled.get(key)
        if fn is None:
            if self.compile_mode == "eager":
                fn = self._run
            else:  # --verbose: why the first dream at a size takes longer
                logger.debug(
                    "dreaming at %dx%d: the first call at a size compiles it", width, height
                )
                counts = self.channel_counts
                fn = tf.function(
                    self._run,
                    input_signature=[
                        tf.TensorSpec([height, width, 3], tf.float32),
                        tf.TensorSpec([], tf.int32),
                        tf.TensorSpec([], tf.float32),
                        tf.TensorSpec([2], tf.int32),
                        # Per layer: channel weights (C,), guide vectors (M, C) of any M.
                        tuple(tf.TensorSpec([c], tf.float32) for c in counts),
                        tuple(tf.TensorSpec([None, c], tf.float32) for c in counts),
                        tf.TensorSpec([], tf.float32),
                    ],
                    jit_compile=self.compile_mode == "xla",
                )
            self._compiled[key] = fn
        return fn

    def _inputs(
        self, height: int, width: int, channels: Channels, guided: bool
    ) -> tuple[tuple[tf.Tensor, ...], tuple[tf.Tensor, ...], tf.Tensor]:
        use_guide = guided and self.guide is not None
        guide = self.guide_features(height, width) if use_guide else self._no_guide
        return self.channel_weights(channels), guide, tf.constant(float(use_guide))

    def __call__(
        self,
        image: np.ndarray,
        *,
        steps: int,
        step_size: float,
        seed: tuple[int, int] = (0, 0),
        channels: Channels = (),
        guided: bool = False,
        first_step: int = 0,
    ) -> tuple[np.ndarray, float]:
        """Dreams ``image`` for ``steps`` steps.

        Args:
            image: (H, W, 3) float32 BGR in [0, 255].
            steps: gradient steps (0 returns the image unchanged).
            step_size: in 0..255 pixel units per unit-std gradient.
            seed: (seed, frame number): the roll jitter is a pure function of it.
            channels: (layer, channel numbers) pairs to dream; () = every channel.
            guided: maximise the match with the guide's features (when a guide is set).
            first_step: the number of this call's first step among the frame's: steps split
                over several calls roll the image exactly as one call would.

        Returns:
            (dreamed image (H, W, 3) float32 BGR in [0, 255], loss before the last step).
        """
        h, w = image.shape[:2]
        fn = self._function(h, w)
        channel_weights, guide, guide_weight = self._inputs(h, w, channels, guided)
        # Step i of frame f rolls by a pure function of (seed, f * 65536 + i), wrapped to int32.
        stream = (seed[1] * 65536 + first_step + 2**31) % 2**32 - 2**31
        started = time.perf_counter()
        try:
            out, loss = fn(
                tf.convert_to_tensor(image, tf.float32),
                tf.constant(steps, tf.int32),
                tf.constant(step_size, tf.float32),
                tf.constant((seed[0], stream), tf.int32),
                channel_weights,
                guide,
                guide_weight,
            )
        except tf.errors.ResourceExhaustedError:
            raise AcceleratorMemoryError((w, h), gpu=self.gpu) from None
        result = out.numpy(), float(loss)
        if steps > 0:  # what one step costs at this shape: run_steps_in_slices sizes calls by it
            self.seconds_per_step[(h, w)] = (time.perf_counter() - started) / steps
        return result

    def objective(
        self, image: np.ndarray, *, channels: Channels = (), guided: bool = False
    ) -> float:
        """The objective of (H, W, 3) float32 BGR in [0, 255], without stepping.

        With ``guided``: the mean best dot product with the guide's vectors (how much the
        image looks like the guide to the network).
        """
        h, w = image.shape[:2]
        weights, guide, guide_weight = self._inputs(h, w, channels, guided)
        return float(
            self._objective(tf.convert_to_tensor(image, tf.float32), weights, guide, guide_weight)
        )


# The longest a compiled call may run: a stop request (Ctrl-C, SIGTERM, a deep render's stop)
# is answered between calls, so it waits at most about this long.
MAX_CALL_S = 1.0


def run_steps_in_slices(
    step: DreamStep,
    image: np.ndarray,
    steps: int,
    *,
    step_size: float,
    seed: tuple[int, int] = (0, 0),
    channels: Channels = (),
    guided: bool = False,
    first_step: int = 0,
    should_stop: Callable[[], bool] | None = None,
    max_call_s: float = MAX_CALL_S,
) -> tuple[np.ndarray, float]:
    """``step(image, steps=steps, ...)`` run as compiled calls of at most ~``max_call_s`` each.

    The one place long runs of steps are sliced: a photo's octaves (``dream.dream_image``) and
    a deep render's frames (``deep.octaves``). Each call takes as many steps as the last call's
    cost per step at this shape says fit (one, before any was measured: that call also
    compiles), so the slices follow the machine, a GPU's calls as well as a slow CPU's. The
    jitter goes on from step to step as in one call (``first_step``), so how the steps were
    sliced does not change the dream. Python handles signals between calls: Ctrl-C waits for
    one short call, not the whole run.

    Args:
        image, step_size, seed, channels, guided, first_step: as ``DreamStep.__call__``.
        steps: the steps in all.
        should_stop: asked between calls; True ends early with the steps done so far.

    Returns:
        (dreamed image (H, W, 3) float32 BGR in [0, 255], the last call's loss).
    """
    h, w = image.shape[:2]
    done, loss = 0, 0.0
    while done < steps:
        if should_stop is not None and should_stop():
            break
        per_step = step.seconds_per_step.get((h, w))
        fit = 1 if per_step is None else max(1, int(max_call_s / max(per_step, 1e-6)))
        n = min(steps - done, fit)
        image, loss = step(
            image,
            steps=n,
            step_size=step_size,
            seed=seed,
            channels=channels,
            guided=guided,
            first_step=first_step + done,
        )
        done += n
        if per_step is None:  # the first call at this shape (it compiled) is done
            logger.debug(
                "steps at %dx%d: measured; calls of up to %g s from here", w, h, max_call_s
            )
    return image, loss


def build_step(dream: ResolvedDream, layers: Sequence[str] | None = None) -> DreamStep:
    """Loads the model of ``dream`` at its decided precision (on ``layers``, the dream's own
    when None) and wraps it in a step with the guide decoded at the door."""
    model = load_model(
        dream.spec.name,
        dream.layers if layers is None else layers,
        weights=dream.settings.weights,
        dtype=KERAS_POLICY[dream.precision],
    )
    return DreamStep(
        model,
        compile_mode=dream.compile_mode,
        jitter=dream.settings.jitter,
        guide=dream.guide,
        gpu=dream.device.kind == "gpu",
    )
