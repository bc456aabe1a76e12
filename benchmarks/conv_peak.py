"""How close the dream step runs to this CPU's convolution peak: ``step_peak_ratio``.

The step's FLOPs are counted from the model's layer shapes at the dream size: 2 x the
multiply-adds of each Conv2D's forward pass, plus those of its input-gradient convolution
(the same multiply-adds). Every conv layer's input gradient is run, the first one's included,
since the step differentiates with respect to the image; no weight gradient is run (the tape
watches the image only). Pooling, ReLU, roll and the normalisation are not counted.

The peak is the best rate one of the model's own conv layers reaches when its forward pass
(the Keras layer itself: convolution, bias, ReLU, at the model's precision) is timed alone on
an input of its real shape; the layers are timed round-robin, so a change of load hits all.
``step_peak_ratio`` = the step's FLOP rate / that peak, both the best of the same rounds (one
step call, then one call of each layer, a round).

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from settings import Settings

if TYPE_CHECKING:
    from livedream.dream import DreamStep
    from livedream.models import FeatureModel


@dataclass
class PeakFigures:
    """The step's FLOP rate against the fastest of its own conv layers, timed alone."""

    step_gflop: float  # per step: forward and input-gradient convolutions
    peak_step_ms: float  # best ms per step, timed in the same rounds as the conv layers
    step_gflops: float  # step_gflop / peak_step_ms
    conv_peak_gflops: float  # the fastest conv layer's forward, timed alone
    conv_peak_layer: str
    conv_gflops: dict[str, float]  # each conv layer's best forward rate
    step_peak_ratio: float  # step_gflops / conv_peak_gflops


@dataclass(frozen=True)
class ConvShape:
    """One Conv2D as the model runs it at the dream size."""

    name: str
    input_shape: tuple[int, int, int, int]  # (1, H, W, C_in)
    macs: int  # forward multiply-adds: H_out x W_out x C_out x kh x kw x C_in


def conv_shapes(model: FeatureModel, size: tuple[int, int]) -> list[ConvShape]:
    """Each Conv2D of ``model`` (a chain of layers, as VGG16 is) at dream ``size`` (w, h).

    Raises:
        ValueError: a model whose layers do not form one chain (InceptionV3).
    """
    import keras

    w, h = size
    shape: tuple[int, ...] = (1, h, w, 3)
    out: list[ConvShape] = []
    for layer in model.keras_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(layer._inbound_nodes) != 1 or isinstance(layer, keras.layers.Concatenate):
            raise ValueError(f"expected a chain of layers, got {layer.name} with branches")
        out_shape = tuple(layer.compute_output_shape(shape))
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = (int(d) for d in layer.kernel.shape)
            _, h_out, w_out, _ = (int(d) for d in out_shape)
            macs = h_out * w_out * c_out * kh * kw * c_in
            b, hi, wi, ci = (int(d) for d in shape)
            out.append(ConvShape(layer.name, (b, hi, wi, ci), macs))
        shape = out_shape
    return out


def step_flop(convs: list[ConvShape]) -> float:
    """FLOPs of one dream step: forward plus input gradient of every conv, 2 per multiply-add."""
    return 2.0 * sum(2 * conv.macs for conv in convs)


def _layer_fn(layer: Any, shape: tuple[int, int, int, int]) -> Any:
    import tensorflow as tf

    dtype = tf.as_dtype(layer.compute_dtype)

    @tf.function(input_signature=[tf.TensorSpec(shape, dtype)])  # type: ignore[untyped-decorator]
    def forward(x: Any) -> Any:
        return layer(x)

    return forward


def time_convs(
    step: DreamStep, convs: list[ConvShape], settings: Settings, rounds: int, burn_in: int = 2
) -> tuple[float, dict[str, float]]:
    """Best ms per dream step and best GFLOP/s of each conv layer's forward pass alone.

    Each round times one call of the step and then one of each layer, so a change of load
    (other jobs on a shared machine) hits both sides of the ratio alike. On a CPU a call
    returns once its kernels ran; reading one element back makes sure.
    """
    import tensorflow as tf

    from step_cost import time_step

    model = step.model
    w, h = settings.dream_size
    image = np.random.default_rng(0).uniform(0.0, 255.0, (h, w, 3)).astype(np.float32)
    time_step(step, burn_in, 0, settings, image)
    timed = []
    for conv in convs:
        layer = model.keras_model.get_layer(conv.name)
        fn = _layer_fn(layer, conv.input_shape)
        x = tf.cast(tf.random.uniform(conv.input_shape, 0.0, 10.0), layer.compute_dtype)
        for _ in range(burn_in):
            fn(x)[0, 0, 0, 0].numpy()
        timed.append((conv, fn, x))
    step_ms = float("inf")
    best: dict[str, float] = {conv.name: float("inf") for conv in convs}
    for i in range(rounds):
        step_ms = min(step_ms, *time_step(step, 0, 1, settings, image, seed=i))
        for conv, fn, x in timed:
            started = time.perf_counter()
            fn(x)[0, 0, 0, 0].numpy()
            best[conv.name] = min(best[conv.name], time.perf_counter() - started)
    return step_ms, {conv.name: 2.0 * conv.macs / best[conv.name] / 1e9 for conv in convs}


def measure_peak(settings: Settings) -> PeakFigures:
    """Builds the step at the auto precision and times it against its own conv layers."""
    from livedream.dream import build_step
    from livedream.resolve import resolve_here

    step = build_step(resolve_here(settings.dream_config()))
    convs = conv_shapes(step.model, settings.dream_size)
    flop = step_flop(convs)
    step_ms, rates = time_convs(step, convs, settings, rounds=6 if settings.quick else 15)
    peak_layer = max(rates, key=lambda name: rates[name])
    step_gflops = flop / (step_ms / 1000.0) / 1e9
    return PeakFigures(
        step_gflop=flop / 1e9,
        peak_step_ms=step_ms,
        step_gflops=step_gflops,
        conv_peak_gflops=rates[peak_layer],
        conv_peak_layer=peak_layer,
        conv_gflops=rates,
        step_peak_ratio=step_gflops / rates[peak_layer],
    )
