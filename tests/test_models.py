"""The model registry: real weights, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livedream.errors import LayerError, ModelError, WeightsError
from livedream.models import MODELS, get_spec, hed_weights_path, load_model


def test_vgg16_hed_builds_only_up_to_the_deepest_chosen_layer() -> None:
    model = load_model("vgg16_hed", ["block2_conv2"])
    names = [layer.name for layer in model.keras_model.layers]
    assert "block2_conv2" in names
    assert not any(name.startswith(("block3", "block4", "block5")) for name in names)


def test_vgg16_hed_weights_are_the_bundled_ones() -> None:
    model = load_model("vgg16_hed", ["block1_conv1"])
    kernel = model.keras_model.get_layer("block1_conv1").get_weights()[0]
    import h5py

    with h5py.File(hed_weights_path(), "r") as f:
        expected = np.asarray(f["block1/layers/conv2d/vars/0"])
    np.testing.assert_array_equal(kernel, expected)


def test_features_respond_to_the_picture() -> None:
    model = load_model("vgg16_hed", ["block3_conv3"])
    flat = np.full((1, 48, 64, 3), 128.0, np.float32)
    rng = np.random.default_rng(0)
    busy = rng.uniform(0, 255, (1, 48, 64, 3)).astype(np.float32)
    (a_flat,) = model.features(flat)
    (a_busy,) = model.features(busy)
    assert a_flat.shape == (1, 12, 16, 256)
    assert float(np.mean(a_busy)) > float(np.mean(a_flat))  # texture excites the features


def test_every_model_knows_its_default_layers() -> None:
    for spec in MODELS.values():
        assert spec.default_layers
        assert set(spec.default_layers) <= set(spec.layers)
        for preset in spec.presets:
            assert set(preset) <= set(spec.layers)
    assert get_spec("inception_v3").default_layers == ("mixed3", "mixed5")


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'alexnet'.*vgg16_hed"):
        load_model("alexnet")


def test_unknown_layer_lists_the_valid_ones() -> None:
    with pytest.raises(LayerError, match=r"no layer 'mixed3'.*block1_conv1.*block5_conv3"):
        load_model("vgg16_hed", ["mixed3"])


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_model("vgg16_hed", weights=tmp_path / "nope.weights.h5")


def test_unreadable_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(WeightsError, match="not a readable HDF5 file"):
        load_model("vgg16_hed", weights=bad)


def test_weights_file_of_another_model(tmp_path: Path) -> None:
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("dense/kernel", data=np.zeros((4, 4), np.float32))
    with pytest.raises(WeightsError, match="has no VGG16 layer"):
        load_model("vgg16_hed", weights=other)


def test_local_weights_file_in_hed_layout_is_used(tmp_path: Path) -> None:
    import shutil

    import h5py

    copy = tmp_path / "mine.weights.h5"
    shutil.copy(hed_weights_path(), copy)
    with h5py.File(copy, "r+") as f:
        f["block1/layers/conv2d/vars/1"][...] = 7.0  # every block1_conv1 bias
    model = load_model("vgg16_hed", ["block1_conv1"], weights=copy)
    bias = model.keras_model.get_layer("block1_conv1").get_weights()[1]
    assert np.all(bias == 7.0)


def test_a_failed_download_says_the_machine_seems_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from livedream.errors import OfflineError

    # No weights cached, and every download goes to a proxy that refuses: offline, for sure.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(OfflineError) as caught:
        load_model("vgg16")
    message = str(caught.value)
    assert "machine seems offline" in message
    assert "--model vgg16_hed" in message
    assert "--weights PATH" in message
    assert "\n" not in message


def test_inception_v3_from_a_local_weights_file_dreams_its_tutorial_layers(
    tmp_path: Path,
) -> None:
    import keras

    # The architecture with freshly initialised weights, saved as a user's local file would be.
    path = tmp_path / "inception.weights.h5"
    keras.applications.InceptionV3(include_top=False, weights=None).save_weights(str(path))
    model = load_model("inception_v3", weights=path, dtype="mixed_bfloat16")
    assert model.layers == ("mixed3", "mixed5")
    names = {layer.name for layer in model.keras_model.layers}
    assert "mixed5" in names
    assert "mixed6" not in names  # built only up to the deepest chosen layer
    assert keras.config.dtype_policy().name == "float32"  # the global policy was restored
    a3, a5 = model.features(np.full((1, 139, 139, 3), 128.0, np.float32))
    assert a3.shape[-1] == 768 and a5.shape[-1] == 768
