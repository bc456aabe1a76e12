"""``--model auto``: the seed's inception_v3 where its weights are in Keras' cache, else the
bundled vgg16_hed; the flags that name a network decide it; the doctor says which runs; and an
Inception dream (randomly initialised weights, nobody here can fetch the real ones) runs and
cycles its own channel presets. No network: weights are planted in a Keras home of the test's."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from livedream import weights
from livedream.args import parse_args
from livedream.config import DreamConfig
from livedream.controls import Controls
from livedream.doctor import checks
from livedream.dream import Dreamer
from livedream.errors import ModelError
from livedream.models import MODELS, get_spec, hed_weights_path
from livedream.plan import check_request
from livedream.preview import KeyHandler
from livedream.resolve import check_look, choose_model, resolve_here

INCEPTION_FILE = weights.KERAS_WEIGHTS["inception_v3"].filename
STAND_IN = b"\x89HDF\r\n\x1a\n" + bytes(4096)  # auto only looks whether the file is there


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras home of this test's own (its ``models`` folder is Keras' cache)."""
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def plant(home: Path, content: bytes = STAND_IN) -> Path:
    path = home / "models" / INCEPTION_FILE
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("planted", "flags", "model", "why"),
    [
        (False, [], "vgg16_hed", "no inception_v3 weights here"),
        (True, [], "inception_v3", "its ImageNet weights are here"),
        (True, ["--layers", "block4_conv3"], "vgg16_hed", "--layers names VGG16 layers"),
        (True, ["--channels", "block4_conv3:43"], "vgg16_hed", "--channels names VGG16 layers"),
        (True, ["--weights", str(hed_weights_path())], "vgg16_hed", "--weights gives a local"),
        (False, ["--layers", "mixed4"], "inception_v3", "--layers names inception_v3 layers"),
        (True, ["--model", "vgg16_hed"], "vgg16_hed", ""),
        (True, ["--demo"], "vgg16_hed", "--demo runs the bundled model"),
    ],
)
def test_auto_runs_inception_where_its_weights_are_unless_the_flags_name_vgg(
    keras_home: Path, planted: bool, flags: list[str], model: str, why: str
) -> None:
    if planted:
        plant(keras_home)
    config, _ = parse_args(flags)
    look = check_look(config.dream)  # the door: where the run's model is decided
    assert look.spec.name == model and look.settings.model == model
    assert look.settings.model_why.startswith(why) and bool(why) == bool(look.settings.model_why)


def test_a_saved_look_on_vgg_layers_keeps_auto_on_vgg(
    keras_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look saved before the Inception weights came keeps working after they come."""
    plant(keras_home)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "livedream" / "looks"
    folder.mkdir(parents=True)
    (folder / "eyes.toml").write_text(
        'layers = ["block4_conv3"]\n[channels]\nblock4_conv3 = [43]\n'
    )
    config, _ = parse_args(["--look", "eyes"])
    look = check_request(config)
    assert (look.spec.name, look.settings.model_why) == ("vgg16_hed", "--look names VGG16 layers")
    assert check_request(parse_args([])[0]).spec.name == "inception_v3"


def test_an_empty_weights_file_is_no_weights(keras_home: Path) -> None:
    plant(keras_home, b"")  # what an interrupted copy can leave
    assert choose_model(DreamConfig()).model == "vgg16_hed"


def test_the_look_follows_the_chosen_model(keras_home: Path) -> None:
    bundled = check_look(DreamConfig())
    assert bundled.spec is MODELS["vgg16_hed"] and bundled.layers == ("block4_conv3",)
    plant(keras_home)
    look = check_look(DreamConfig())
    assert look.spec is MODELS["inception_v3"]
    assert look.layers == ("mixed3", "mixed5")  # the seed's layers
    assert look.settings.model == "inception_v3"
    # The status row says which model runs, and why when the machine decided it.
    assert look.model_row(look.layers) == (
        "inception_v3 (mixed3,mixed5), auto: its ImageNet weights are here"
    )
    assert bundled.model_row(("block3_conv3",)) == (
        "vgg16_hed (block3_conv3), auto: no inception_v3 weights here"
    )
    named = check_look(DreamConfig(layers=("block3_conv3",)))
    assert named.model_row(named.layers) == "vgg16_hed (block3_conv3)"  # the user named it
    names = [name for name, _ in look.channel_presets]
    assert names == ["mixed3:128", "mixed3:384", "mixed3:640", "mixed5:192", "mixed5:576"]
    # Settings decided once (by the CLI) are not decided again by the look.
    decided = choose_model(DreamConfig())
    (keras_home / "models" / INCEPTION_FILE).unlink()
    assert check_look(decided).spec is MODELS["inception_v3"]


def test_every_model_has_channel_presets_for_c() -> None:
    vgg, imagenet = MODELS["vgg16_hed"], MODELS["vgg16"]
    assert [p.selection for p in imagenet.channel_presets] == [
        p.selection for p in vgg.channel_presets
    ]  # the same network: the same channels, named by number
    assert all(p.name == f"{p.layer}:{p.channels[0]}" for p in imagenet.channel_presets)
    assert all(spec.channel_presets for spec in MODELS.values())


def test_auto_is_a_word_of_the_command_line_not_a_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ModelError, match=r"'auto' is decided by .*choose_model"):
        get_spec("auto")
    with pytest.raises(ModelError, match=r"unknown model 'alexnet': expected one of auto, vgg16"):
        get_spec("alexnet")
    with pytest.raises(SystemExit):
        parse_args(["--model", "alexnet"])
    err = capsys.readouterr().err
    assert "'auto'" in err and "'inception_v3'" in err and "'vgg16_hed'" in err


def test_the_doctor_says_inception_runs_when_its_checked_weights_are_here(
    keras_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(keras_home)
    # Keras' published hash cannot be met without the real file: this file's own stands in.
    spec = weights.KERAS_WEIGHTS["inception_v3"]
    digest = hashlib.md5(STAND_IN).hexdigest()
    monkeypatch.setitem(weights.KERAS_WEIGHTS, "inception_v3", replace(spec, file_hash=digest))
    rows = {row.check: row for row in checks.check_keras_cache()}
    assert rows["model"].status == "info" and rows["model"].fix == ""
    assert rows["model"].detail == (
        "inception_v3 runs by default (--model auto: its ImageNet weights are here); "
        "--model vgg16_hed runs the bundled one"
    )


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """InceptionV3 with randomly initialised weights, saved as Keras saves weights (88 MB):
    it dreams at the cost of the ImageNet one, without the network."""
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("inception") / "random_inception_v3.weights.h5"
    keras.applications.InceptionV3(include_top=False, weights=None).save_weights(path)
    return path


def test_an_inception_dream_runs_small_and_c_cycles_its_presets(random_inception: Path) -> None:
    config = DreamConfig(
        model="inception_v3",
        weights=random_inception,
        layers=("mixed3",),  # the presets' first layer: c needs no second model
        dream_size=(96, 96),
        precision="float32",
        steps=1,
        step_size=0.02,
    )
    dream = resolve_here(config)
    dreamer = Dreamer(dream)
    controls = Controls.from_dream(dream)
    keys = KeyHandler(controls, list(dream.layer_presets), channel_presets=dream.channel_presets)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)

    def dreamed() -> np.ndarray:
        dreamer.apply(controls)
        dreamer.reset()
        dreamer.frame_index = 0  # the same jitter for every look
        return dreamer(frame).astype(np.float32)

    every = dreamed()
    assert np.abs(every - frame).mean() > 0.5  # the dream shows
    assert keys.handle(ord("c")) == "channels mixed3:128 (mixed3:128)"
    one = dreamed()
    assert keys.handle(ord("c")) == "channels mixed3:384 (mixed3:384)"
    other = dreamed()
    assert np.abs(one - every).mean() > 0.1 and np.abs(other - one).mean() > 0.1
    assert dreamer.layers == ("mixed3",)
