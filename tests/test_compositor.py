"""The compositor on synthetic scenes with known motion: the keyframe's dream follows the
picture straight from the keyframe, vanishes where the scene was occluded, fades with age x
motion and resets on a cut."""

from __future__ import annotations

import cv2
import numpy as np

from livedream.compositor import Compositor, Keyframe
from livedream.temporal import to_gray

W, H = 160, 120
PAD = 40


def texture(seed: int = 0) -> np.ndarray:
    """A smooth random texture larger than the view, (H + 2 PAD, W + 2 PAD, 3) uint8."""
    rng = np.random.default_rng(seed)
    noise = np.zeros((H + 2 * PAD, W + 2 * PAD), np.float32)
    for sigma in (2.0, 6.0, 15.0):  # detail at several scales, as a real scene has
        layer = cv2.GaussianBlur(rng.random(noise.shape).astype(np.float32), (0, 0), sigma)
        noise += (layer - layer.mean()) / layer.std()
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 200 + 20
    return np.dstack([noise, noise * 0.8 + 20, 255 - noise]).astype(np.uint8)


def view(scene: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """The camera's view of ``scene`` after it moved ``dx``, ``dy`` pixels (content moves right)."""
    return np.ascontiguousarray(scene[PAD - dy : PAD - dy + H, PAD - dx : PAD - dx + W])


def other_scene() -> np.ndarray:
    """Another place altogether: a smooth gradient with a few shapes, (H, W, 3) uint8."""
    scene = np.zeros((H, W, 3), np.uint8)
    scene[:] = np.linspace(40, 220, W, dtype=np.uint8)[None, :, None]
    cv2.circle(scene, (40, 40), 20, (250, 200, 30), -1)
    cv2.rectangle(scene, (90, 60), (140, 110), (20, 40, 200), -1)
    return scene


def keyframe_with_square(frame: np.ndarray, captured: float = 0.0) -> Keyframe:
    """A keyframe of ``frame`` whose dream is a bright 16x16 square at (60, 50)."""
    residual = np.zeros((H, W, 3), np.float32)
    residual[50:66, 60:76] = 60.0
    return Keyframe(to_gray(frame), residual, captured, index=0)


def square_centre(out: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Where the added square sits in ``out`` (x, y), from the difference to ``frame``."""
    diff = (out.astype(np.float32) - frame).mean(axis=2)
    ys, xs = np.nonzero(diff > 20)
    assert len(xs) > 50, "the dream's square is not in the picture"
    return float(xs.mean()), float(ys.mean())


def test_before_any_keyframe_frames_go_out_unchanged() -> None:
    frame = view(texture())
    out, dreamed = Compositor().composite(frame, 0.0)
    assert out is frame and not dreamed


def test_the_keyframes_own_frame_gets_its_dream_without_flow() -> None:
    frame = view(texture())
    compositor = Compositor()
    compositor.publish(keyframe_with_square(frame))
    out, dreamed = compositor.composite(frame, 0.0, index=0)
    assert dreamed
    assert square_centre(out, frame) == (67.5, 57.5)


def test_the_dream_follows_the_motion_straight_from_the_keyframe() -> None:
    scene = texture()
    compositor = Compositor(fade_px_s=1e9)  # no fade: the position is under test
    compositor.publish(keyframe_with_square(view(scene)))
    for dx in range(1, 10):  # a steady pan, frame after frame
        frame = view(scene, dx=dx, dy=-dx // 3)
        out, dreamed = compositor.composite(frame, 0.01 * dx, index=dx)
        assert dreamed
        x, y = square_centre(out, frame)
        # Each frame is matched to the keyframe directly: the error does not add up.
        assert abs(x - (67.5 + dx)) < 1.5 and abs(y - (57.5 - dx // 3)) < 1.5, (dx, x, y)


def test_occluded_parts_show_the_raw_frame_not_a_ghost() -> None:
    scene = texture()
    key = view(scene)
    compositor = Compositor(fade_px_s=1e9)
    residual = np.full((H, W, 3), 30.0, np.float32)  # a dream over the whole picture
    compositor.publish(Keyframe(to_gray(key), residual, 0.0, index=0))
    frame = view(scene, dx=4)
    frame[30:90, 50:110] = (15, 25, 35)  # something dark and new covers the middle
    out, dreamed = compositor.composite(frame, 0.1, index=1)
    assert dreamed
    added = np.abs(out.astype(np.float32) - frame).mean(axis=2)
    assert added[40:80, 60:100].mean() < 0.25 * added[:, :30].mean()  # occluded: little dream
    assert added[:, :30].mean() > 15  # the rest keeps it


def test_the_dream_fades_with_age_times_motion() -> None:
    scene = texture()
    key = view(scene)
    residual = np.full((H, W, 3), 40.0, np.float32)

    def strength(dx: int, age: float) -> float:
        compositor = Compositor(fade_px_s=10.0)
        compositor.publish(Keyframe(to_gray(key), residual, 0.0, index=0))
        frame = view(scene, dx=dx)
        out, _ = compositor.composite(frame, age, index=1)
        return float(np.abs(out.astype(np.float32) - frame)[:, 30:-30].mean())

    assert strength(0, 5.0) > 0.9 * strength(0, 0.05)  # nothing moved: age alone fades nothing
    assert strength(6, 0.05) > 0.9 * strength(0, 0.05)  # a fresh keyframe keeps its dream
    assert strength(6, 2.0) < 0.5 * strength(6, 0.05)  # old and moved: mostly faded
    assert strength(6, 1.0) > strength(6, 2.0)  # the older, the fainter


def test_a_scene_cut_resets_until_a_newer_keyframe() -> None:
    compositor = Compositor()
    old_scene = view(texture(seed=1))
    compositor.publish(keyframe_with_square(old_scene, captured=1.0))
    new_scene = other_scene()
    out, dreamed = compositor.composite(new_scene, 2.0, index=5)
    assert not dreamed and out is new_scene
    assert compositor.keyframe is None and compositor.cuts == 1
    compositor.publish(keyframe_with_square(old_scene, captured=1.5))  # dreamed before the cut
    assert compositor.keyframe is None  # stale: another scene
    compositor.publish(keyframe_with_square(new_scene, captured=2.5))
    out, dreamed = compositor.composite(new_scene, 2.6, index=0)
    assert dreamed and square_centre(out, new_scene) == (67.5, 57.5)


def test_full_size_frames_get_the_dream_upscaled() -> None:
    scene = texture()
    small = view(scene)
    big = cv2.resize(small, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    compositor = Compositor()
    compositor.publish(keyframe_with_square(small))
    out, dreamed = compositor.composite(big, 0.0, index=3)
    assert dreamed and out.shape == big.shape
    x, y = square_centre(out, big)
    assert abs(x - 2 * 67.5) < 3 and abs(y - 2 * 57.5) < 3
