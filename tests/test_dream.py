"""The dream engine: the compiled step and the per-frame dreamer, with real weights."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DREAM

from livedream.config import DreamConfig
from livedream.dream import Device, Dreamer, DreamStep, build_step, choose_variant, dream_image
from livedream.errors import UsageError
from livedream.resolve import resolve_here

SMALL = SHARED_DREAM  # block3_conv3 at 64x48, float32


@pytest.fixture
def step(shared_step: DreamStep) -> DreamStep:
    return shared_step


def scene(width: int = 96, height: int = 72, shift: int = 0) -> np.ndarray:
    """A textured BGR scene, moved right by ``shift`` pixels."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (height // 8 + 1, (width + shift) // 8 + 2, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(base, (base.shape[1] * 8, base.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:height, shift : shift + width])


def test_steps_raise_the_layer_objective(step: DreamStep) -> None:
    image = scene(64, 48).astype(np.float32)
    before = step.objective(image)
    dreamed, _ = step(image, steps=5, step_size=3.0)
    assert step.objective(dreamed) > before * 1.1
    assert dreamed.min() >= 0.0
    assert dreamed.max() <= 255.0


def test_zero_steps_change_nothing(step: DreamStep) -> None:
    image = scene(64, 48).astype(np.float32)
    dreamed, _ = step(image, steps=0, step_size=3.0)
    np.testing.assert_array_equal(dreamed, image)


@pytest.mark.parametrize(("width", "height"), [(97, 61), (64, 48), (33, 129)])
def test_dreamer_keeps_shape_dtype_and_colour_order(
    step: DreamStep, width: int, height: int
) -> None:
    frame = scene(width, height)
    frame[..., 2] = 250  # a strongly red frame stays red: BGR order is preserved
    frame[..., 0] = 5
    dreamer = Dreamer(resolve_here(SMALL), step=step)
    out = frame
    for _ in range(3):
        out = dreamer(frame)
    assert out.shape == frame.shape
    assert out.dtype == np.uint8
    assert out[..., 2].mean() > out[..., 0].mean() + 100
    assert np.abs(out.astype(int) - frame.astype(int)).mean() > 1.0  # visibly dreamed


def test_compiled_step_traces_once_per_dream_size(step: DreamStep) -> None:
    dreamer = Dreamer(resolve_here(SMALL), step=step)
    before = step.traces
    for shift in range(6):
        dreamer(scene(96, 72, shift))
    assert step.traces - before <= 1  # at most the first frame of a new size traces
    traces = step.traces
    for shift in range(3):
        dreamer(scene(96, 72, shift))
    assert step.traces == traces
    # A size no other test dreams at (the step is shared by the session).
    other = Dreamer(
        resolve_here(DreamConfig(**{**SMALL.__dict__, "dream_size": (80, 56)})), step=step
    )
    other(scene(96, 72))
    other(scene(96, 72, 1))
    assert step.traces == traces + 1


def test_same_seed_same_output_other_seed_other_output(step: DreamStep) -> None:
    frame = scene()
    a = Dreamer(resolve_here(SMALL), step=step)(frame)
    b = Dreamer(resolve_here(SMALL), step=step)(frame)
    c = Dreamer(resolve_here(DreamConfig(**{**SMALL.__dict__, "seed": 5})), step=step)(frame)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.1


def test_carry_deepens_the_dream_and_blend_zero_turns_it_off(step: DreamStep) -> None:
    frame = scene()
    carried = Dreamer(resolve_here(SMALL), step=step)
    fresh = Dreamer(resolve_here(DreamConfig(**{**SMALL.__dict__, "blend": 0.0})), step=step)
    for _ in range(4):
        deep = carried(frame)
        shallow = fresh(frame)
    strength = np.abs(deep.astype(int) - frame).mean()
    assert strength > 1.5 * np.abs(shallow.astype(int) - frame).mean()
    # blend = 0: every frame is dreamed from its own pixels only, so history does not matter.
    alone = Dreamer(resolve_here(DreamConfig(**{**SMALL.__dict__, "blend": 0.0})), step=step)
    alone.frame_index = fresh.frame_index  # the same frame number, so the same jitter
    np.testing.assert_array_equal(alone(frame), fresh(frame))
    # reset() drops the carry: the next frame is as weak as a first frame.
    carried.reset()
    after_reset = carried(frame)
    assert np.abs(after_reset.astype(int) - frame).mean() < strength


def test_dream_off_passes_frames_through(step: DreamStep) -> None:
    dreamer = Dreamer(resolve_here(SMALL), step=step)
    dreamer.enabled = False
    frame = scene()
    assert dreamer(frame) is frame


def test_still_image_octaves_dream_the_whole_photo(step: DreamStep) -> None:
    photo = scene(120, 90)
    config = DreamConfig(**{**SMALL.__dict__, "octaves": 3, "octave_steps": 4})
    out = dream_image(photo, resolve_here(config), step=step)
    assert out.shape == photo.shape
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() > 3.0


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (Device("cpu", "Xeon with AMX", 2, True), ("bfloat16", "graph")),
        (Device("cpu", "old laptop", 4, False), ("float32", "graph")),
        (Device("gpu", "H100", 1, True), ("float16", "xla")),
    ],
)
def test_auto_picks_per_device(device: Device, expected: tuple[str, str]) -> None:
    assert choose_variant("auto", "auto", device) == expected
    assert choose_variant("float32", "eager", device) == ("float32", "eager")


def test_bad_precision_or_compile_mode_is_a_usage_error() -> None:
    cpu = Device("cpu", "x", 1, False)
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        choose_variant("int4", "auto", cpu)
    with pytest.raises(UsageError, match="unknown compile mode 'jit'"):
        choose_variant("auto", "jit", cpu)


@pytest.mark.parametrize(("precision", "mode"), [("bfloat16", "graph"), ("float32", "eager")])
def test_every_variant_dreams(precision: str, mode: str, step: DreamStep) -> None:
    if precision == "float32":  # the shared float32 model, stepped eagerly: no second build
        variant_step = DreamStep(step.model, compile_mode=mode)
    else:
        config = DreamConfig(
            layers=("block2_conv2",), dream_size=(48, 32), precision=precision, compile=mode
        )
        variant_step = build_step(resolve_here(config))
    assert variant_step.compile_mode == mode
    image = scene(48, 32).astype(np.float32)
    dreamed, _ = variant_step(image, steps=3, step_size=3.0)
    assert variant_step.objective(dreamed) > variant_step.objective(image)
