"""The resolved dream: what is dreamed and how, decided once at the door and frozen.

``choose_model`` turns ``--model auto`` into a network, once; ``check_look`` checks the model,
layers, ``--channels`` and ``--guide`` against the registry before TensorFlow starts (in well
under a second); ``resolve_dream`` adds the precision and compile mode for the device once it
is known. Everything downstream (the dreamer, the step, the controls, the keys, the status
table) takes the ``ResolvedDream``, or the part it needs: nobody looks a model up by name or
decides the precision again. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from livedream.config import DreamConfig, DreamSize
from livedream.device import Device, choose_variant
from livedream.errors import ChannelRangeError, LayerError, SourceError, UnknownLayerError
from livedream.models import (
    AUTO_MODEL,
    INCEPTION_LAYER_NAMES,
    VGG16_LAYER_NAMES,
    Channels,
    ModelSpec,
    check_layers,
    get_spec,
)

LayerSet = tuple[str, ...]

# What --model auto runs: the seed's model where its weights are here, else the offline one.
SEED_MODEL, OFFLINE_MODEL = "inception_v3", "vgg16_hed"
# Why, when no flag named a network: the status row says these (a flag's the user knows).
WEIGHTS_HERE, NO_WEIGHTS = "its ImageNet weights are here", f"no {SEED_MODEL} weights here"
MACHINE_REASONS = (WEIGHTS_HERE, NO_WEIGHTS)


@dataclass(frozen=True, eq=False)
class Look:
    """What is dreamed, checked against the model.

    Attributes:
        settings: the dream's numbers as given (steps, strength, blend, octaves, seed...).
        spec: the model's registry entry.
        layers: the layers the dream starts on.
        layer_presets: the layer sets ``l`` cycles through (``layers`` among them).
        channels: ``--channels`` resolved against ``layers``; () = every channel.
        channel_presets: (name, channels) looks ``c`` cycles through, ``--channels`` first.
        guide: the guide image, (H, W, 3) uint8 BGR decoded once, or None.
        guide_name: its file name, for the status table; None without a guide.
    """

    settings: DreamConfig
    spec: ModelSpec
    layers: LayerSet
    layer_presets: tuple[LayerSet, ...]
    channels: Channels
    channel_presets: tuple[tuple[str, Channels], ...]
    guide: np.ndarray | None
    guide_name: str | None

    @property
    def guided(self) -> bool:
        """The dream starts guided: on whenever a guide was given (``g`` turns it off)."""
        return self.guide is not None

    def model_row(self, layers: Sequence[str]) -> str:
        """The status table's and overlay's model row for ``layers`` (the keys may change them):
        the model and, when ``--model auto`` chose it by what is on this machine, why."""
        why = self.settings.model_why
        return f"{self.spec.name} ({','.join(layers)})" + (
            f", auto: {why}" if why in MACHINE_REASONS else ""
        )

    @property
    def size(self) -> DreamSize:
        """The dream-size policy: ``size.size_for(w, h)`` for a frame of w x h."""
        return self.settings.size


@dataclass(frozen=True, eq=False)
class ResolvedDream(Look):
    """A ``Look`` with the precision and compile mode decided for ``device``.

    Attributes:
        precision: float32, bfloat16 or float16 (never auto).
        compile_mode: graph, xla or eager (never auto).
        device: what the dream runs on.
    """

    precision: str
    compile_mode: str
    device: Device

    def tuned(self, **settings: Any) -> ResolvedDream:
        """The same dream with other numbers (``blend``, ``seed``, ``dream_size``, ``steps``...);
        not for what the door checks (model, layers, channels, guide, precision)."""
        return replace(self, settings=replace(self.settings, **settings))


def check_channels(spec: ModelSpec, layers: Sequence[str], channels: Channels) -> Channels:
    """Resolves ``--channels`` against the dreamed ``layers``; raises ``LayerError``.

    A layer of ``""`` means the one layer dreamed. Channels given twice for a layer merge.
    """
    chosen = check_layers(spec, layers)
    merged: dict[str, set[int]] = {}
    for layer, numbers in channels:
        name = layer
        if not name:
            if len(chosen) != 1:
                raise LayerError(
                    f"--channels {','.join(map(str, numbers))} names no layer but "
                    f"{len(chosen)} layers are dreamed ({', '.join(chosen)}): "
                    "write LAYER:C1,C2 (e.g. --channels block4_conv3:12,77)"
                )
            name = chosen[0]
        if name not in chosen:
            raise LayerError(
                f"--channels names layer {name!r}, which is not dreamed ({', '.join(chosen)}): "
                "add it to --layers or name a dreamed layer"
            )
        count = spec.channel_count(name)
        bad = [c for c in numbers if not 0 <= c < count]
        if bad:
            raise ChannelRangeError(spec.name, name, count, bad[0])
        merged.setdefault(name, set()).update(numbers)
    return tuple((name, tuple(sorted(numbers))) for name, numbers in merged.items())


def load_guide(path: Path) -> np.ndarray:
    """The guide image at ``path``, (H, W, 3) uint8 BGR; raises ``SourceError`` (one line)."""
    from livedream.sources import ImageSource

    try:
        source = ImageSource(path, repeat=False)
    except SourceError as exc:
        raise SourceError(f"--guide: {exc}") from None
    source.close()  # the still stays readable: it was decoded on opening
    return np.array(source.image)


def choose_model(
    config: DreamConfig, *, look_layers: Sequence[str] = (), cache_dir: Path | None = None
) -> DreamConfig:
    """``config`` with ``--model auto`` decided (``model_why`` says why); any other model is
    kept as named. Called by ``check_look`` at the door, before anything asks which network
    runs (a saved ``--look`` is checked against it there too); later callers see its name.

    Auto runs ``vgg16_hed`` when ``--weights`` gives a local file (the bundled network's, which
    reads both VGG16 layouts) or ``--layers``/``--channels`` (or, after them, the layers of a
    saved ``--look``: ``look_layers``) name VGG16 layers; ``inception_v3`` when they name its
    ``mixedN`` layers; otherwise ``inception_v3`` where its ImageNet weights are in Keras'
    cache (``cache_dir``: that folder), else ``vgg16_hed``. The cache is only looked at (is the
    file there, not empty), not hashed: start-up stays instant, ``--get-weights`` puts only a
    checked file there, and Keras checks the hash itself when it loads the file.
    """
    if config.model != AUTO_MODEL:
        return config
    from livedream.weights import have_weights

    named = _named_network(config, look_layers)
    if named is not None:
        model, why = named
    elif have_weights(SEED_MODEL, cache_dir=cache_dir):
        model, why = SEED_MODEL, WEIGHTS_HERE
    else:
        model, why = OFFLINE_MODEL, NO_WEIGHTS
    return replace(config, model=model, model_why=why)


def _named_network(config: DreamConfig, look_layers: Sequence[str]) -> tuple[str, str] | None:
    """(model, why) when ``--weights``, ``--layers``, ``--channels`` or the ``--look`` name a
    network."""
    if config.weights is not None:
        return OFFLINE_MODEL, "--weights gives a local VGG16 file"
    given = (
        ("--layers", set(config.layers)),
        ("--channels", {layer for layer, _ in config.channels if layer}),
        ("--look", set(look_layers)),
    )
    for flag, names in given:
        if names & set(VGG16_LAYER_NAMES):
            return OFFLINE_MODEL, f"{flag} names VGG16 layers"
        if names & set(INCEPTION_LAYER_NAMES):
            return SEED_MODEL, f"{flag} names {SEED_MODEL} layers"
    return None


def check_look(config: DreamConfig, *, look_layers: Sequence[str] = ()) -> Look:
    """Checks the model (``auto`` decided by ``choose_model``, unless it was already; a saved
    ``--look``'s ``look_layers`` count there), layers, ``--channels`` and ``--guide``; decodes
    the guide once.

    Raises:
        ModelError, LayerError, SourceError: with a one-line reason.
    """
    config = choose_model(config, look_layers=look_layers)
    spec = get_spec(config.model)
    try:
        layers = check_layers(spec, config.layers)
    except UnknownLayerError as exc:
        raise LayerError(f"{exc} (--layers A,B)") from None
    presets = list(spec.presets)
    if config.layers and layers not in presets:
        presets.insert(0, layers)
    channels = check_channels(spec, layers, config.channels)
    looks = [(p.name, p.selection) for p in spec.channel_presets]
    if channels and channels not in [c for _, c in looks]:
        looks.insert(0, ("--channels", channels))
    return Look(
        settings=config,
        spec=spec,
        layers=layers,
        layer_presets=tuple(presets),
        channels=channels,
        channel_presets=tuple(looks),
        guide=None if config.guide is None else load_guide(config.guide),
        guide_name=None if config.guide is None else config.guide.name,
    )


def resolve_dream(look: Look, device: Device, *, auto_size: bool | None = None) -> ResolvedDream:
    """``look`` on ``device``: the precision and compile mode asked for, ``auto`` resolved to
    the fastest there (``device.choose_variant``), decided once; ``auto_size``: whether the
    dream's size follows the machine (the run plan's), None: as the settings say.

    Raises:
        UsageError: an unknown precision or compile mode.
    """
    settings = look.settings
    precision, compile_mode = choose_variant(settings.precision, settings.compile, device)
    if auto_size is not None:
        settings = replace(settings, auto_size=auto_size)
    return ResolvedDream(
        **{f.name: getattr(look, f.name) for f in fields(Look) if f.name != "settings"},
        settings=settings,
        precision=precision,
        compile_mode=compile_mode,
        device=device,
    )


def resolve_here(config: DreamConfig) -> ResolvedDream:
    """The dream of ``config`` on this machine's device, in one call (benchmarks, scripts)."""
    from livedream.device import detect_device

    return resolve_dream(check_look(config), detect_device())
