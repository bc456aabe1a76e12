"""Temporal carry: flow warp, occlusion mask, and the flicker it saves on a moving clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_DREAM
from helpers import MEDIA_DIR

from livedream.config import DreamConfig
from livedream.dream import Dreamer, DreamStep
from livedream.resolve import resolve_here
from livedream.temporal import FlowEstimator, consistency, flicker, to_gray, warp


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 6 + 2, width // 6 + 2, 3), dtype=np.uint8)
    big = cv2.resize(small, (small.shape[1] * 6, small.shape[0] * 6), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:height, :width])


def test_warp_follows_a_known_motion() -> None:
    scene = texture(200, 100)
    prev, cur = scene[:, 10:170], scene[:, 6:166]  # the picture moved 4 px right
    estimator = FlowEstimator()
    back = estimator.flow(to_gray(cur), to_gray(prev))
    inner = (slice(10, -10), slice(10, -10))
    assert np.median(back[inner][..., 0]) == pytest.approx(-4.0, abs=0.5)  # came from 4 px left
    warped = warp(prev.astype(np.float32), back)
    error_warped = np.abs(warped[inner] - cur[inner]).mean()
    error_unwarped = np.abs(prev[inner].astype(np.float32) - cur[inner]).mean()
    assert error_warped < error_unwarped / 3


def test_consistency_distrusts_disagreeing_flows() -> None:
    back = np.zeros((20, 30, 2), np.float32)
    fwd = np.zeros_like(back)
    assert consistency(back, fwd).min() == 1.0
    back[5:10, 5:10] = (6.0, 0.0)  # these pixels came from 6 px right, but nothing goes back
    mask = consistency(back, fwd)
    assert mask[5:10, 5:10].max() == 0.0
    assert mask[15:, 15:].min() == 1.0


def moving_clip(frames: int = 24) -> list[np.ndarray]:
    """Real footage when the shared media is there, else a panning synthetic scene."""
    clip = MEDIA_DIR / "bikes.mp4"
    if clip.exists():
        capture = cv2.VideoCapture(str(clip))
        out = []
        for _ in range(frames):
            ok, frame = capture.read()
            assert ok
            out.append(cv2.resize(frame, (160, 68), interpolation=cv2.INTER_AREA))
        capture.release()
        return out
    scene = texture(160 + 2 * frames, 68)
    return [np.ascontiguousarray(scene[:, 2 * i : 2 * i + 160]) for i in range(frames)]


def test_flow_carry_flickers_less_than_no_carry(shared_step: DreamStep) -> None:
    # 12 frames dreamed at 96x40 and shown at 160x68: the carry's flicker is ~0.4 of the
    # fresh dream's here (0.3 at 24 frames and 160x68), against a bar of 0.8.
    config = DreamConfig(**{**SHARED_DREAM.__dict__, "dream_size": (96, 40)})
    step = shared_step
    clip = moving_clip(12)
    carried = Dreamer(resolve_here(config), step=step)
    fresh = Dreamer(resolve_here(DreamConfig(**{**config.__dict__, "blend": 0.0})), step=step)
    with_carry = flicker(clip, [carried(f) for f in clip], width=160)
    without = flicker(clip, [fresh(f) for f in clip], width=160)
    assert with_carry["strength"] >= without["strength"]
    assert with_carry["flicker"] < 0.8 * without["flicker"]


def test_flicker_of_an_undreamed_clip_is_zero() -> None:
    clip = moving_clip(6)
    shifted = [np.clip(f.astype(int) + 20, 0, 255).astype(np.uint8) for f in clip]
    result = flicker(clip, shifted, width=160)
    assert result["strength"] > 10
    assert abs(result["flicker"]) < 0.05  # a constant change does not flicker
