"""Faces kept readable: on a real face (scikit-image's astronaut) the dream is mostly kept off
the face, ``--face-strength 1`` and the ``k`` key give exactly the unprotected picture, the mask
follows a moving face between detections, and a lost face is held before it fades. Real model
(vgg16_hed) at small sizes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DREAM
from helpers import FACE_BOX, face_photo, region_means

from livedream.compositor import Compositor, Keyframe
from livedream.controls import Controls
from livedream.dream import Dreamer, DreamStep
from livedream.faces import Face, FaceTracker, HaarDetector, face_mask
from livedream.pipeline import RenderPipeline
from livedream.preview import KeyHandler
from livedream.resolve import check_look, resolve_here
from livedream.sources import ImageSource
from livedream.temporal import to_gray

SIZE = 256
DREAM = replace(SHARED_DREAM, dream_size=(128, 128), step_size=0.04, steps=2)
FRAMES = 6


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faces") / "astronaut.png"
    cv2.imwrite(str(path), face_photo(SIZE))
    return path


def render(
    photo_path: Path, step: DreamStep, *, strength: float, tracker: bool = True, k: bool = False
) -> list[np.ndarray]:
    """The photo as a FRAMES-frame file render, protected at ``strength`` (``k``: the key
    pressed once before the run); the output frames."""
    dream = resolve_here(DREAM)
    controls = Controls.from_dream(dream, face_strength=strength)
    controls.steps, controls.step_size = DREAM.steps, DREAM.step_size
    if k:
        assert KeyHandler(controls, []).handle(ord("k")) == "face protection off"
    source = ImageSource(photo_path)
    with RenderPipeline(
        source,
        lambda: Dreamer(dream, step=step),
        controls=controls,
        max_frames=FRAMES,
        faces=FaceTracker() if tracker else None,
    ) as pipeline:
        frames = [frame.image for frame in pipeline]
    assert pipeline.error is None and len(frames) == FRAMES
    return frames


def test_the_detector_finds_the_test_face() -> None:
    boxes = HaarDetector().detect(face_photo(SIZE))
    assert len(boxes) == 1
    x, y, w, _ = boxes[0]
    assert abs(x - FACE_BOX[0]) < 6 and abs(y - FACE_BOX[1]) < 6 and abs(w - FACE_BOX[2]) < 8


def test_a_face_keeps_at_most_half_the_dream_at_strength_0_2(
    photo_path: Path, shared_step: DreamStep
) -> None:
    original = face_photo(SIZE).astype(np.float32)
    frames = render(photo_path, shared_step, strength=0.2)
    plain = render(photo_path, shared_step, strength=1.0)
    for out, unprotected in zip(frames[2:], plain[2:], strict=True):
        inside, outside = region_means(np.abs(out - original).mean(axis=2), FACE_BOX)
        assert inside <= 0.5 * outside, (inside, outside)
        # The rest of the picture is dreamed as it would be without protection.
        plain_in, plain_out = region_means(np.abs(unprotected - original).mean(axis=2), FACE_BOX)
        assert plain_in > 2 * inside and outside == pytest.approx(plain_out, rel=0.1)


def test_strength_1_and_the_k_key_give_the_unprotected_picture(
    photo_path: Path, shared_step: DreamStep
) -> None:
    unprotected = render(photo_path, shared_step, strength=1.0, tracker=False)
    for frames in (
        render(photo_path, shared_step, strength=1.0),
        render(photo_path, shared_step, strength=0.2, k=True),
    ):
        for out, plain in zip(frames, unprotected, strict=True):
            np.testing.assert_array_equal(out, plain)
    protected = render(photo_path, shared_step, strength=0.2)
    assert any(
        np.abs(a.astype(int) - b).max() > 10 for a, b in zip(protected, unprotected, strict=True)
    )


def test_k_says_so_when_the_flag_turned_protection_off() -> None:
    controls = Controls.from_dream(check_look(DREAM), face_strength=1.0)
    note = KeyHandler(controls, []).handle(ord("k"))
    assert note == "face protection needs --face-strength below 1"
    assert controls.kept_on_faces == 1.0


def test_the_tracker_follows_a_moving_face_between_detections() -> None:
    tracker = FaceTracker(detect_every=60.0)  # one detection, then flow alone
    for i, shift in enumerate(range(0, 41, 4)):  # 4 px a frame to the right
        frame = face_photo(SIZE, shift=shift)
        gray = to_gray(cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA))
        faces = tracker.update(frame, gray, clock=0.04 * i)
        assert len(faces) == 1
        if i == 0:
            start = faces[0].x
        assert faces[0].x == pytest.approx(start + shift / 2, abs=1.5), shift  # dream-size px
    assert tracker.detections == 1


def test_the_mask_moves_onto_each_frame_with_the_residual() -> None:
    frame = face_photo(SIZE)
    small = cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA)
    x, y, w, h = (v / 2 for v in FACE_BOX)
    residual = np.full((128, 128, 3), 40.0, np.float32)
    keyframe = Keyframe(to_gray(small), residual, 0.0, 0, faces=(Face(x, y, w, h, seen=0.0),))
    compositor = Compositor(fade_px_s=1e9)
    compositor.publish(keyframe)
    for shift in (0, 12, 24):
        moved = face_photo(SIZE, shift=shift)
        out, dreamed = compositor.composite(moved, 0.05, index=shift + 1, face_strength=0.0)
        assert dreamed and compositor.last_faces == 1
        added = np.abs(out.astype(np.float32) - moved).mean(axis=2)
        box = (FACE_BOX[0] + shift, *FACE_BOX[1:])
        inside, outside = region_means(added, box)
        assert inside < 0.25 * outside, (shift, inside, outside)  # the hole moved with the face
        left_of_it = region_means(added, (FACE_BOX[0] + shift - 40, *FACE_BOX[1:]))[0]
        assert left_of_it > 3 * inside


def test_a_lost_face_is_held_for_a_second_then_fades() -> None:
    tracker = FaceTracker(detect_every=0.0)  # a detection on every keyframe
    face = face_photo(SIZE)
    covered = face.copy()
    x, y, w, h = FACE_BOX
    covered[y - 10 : y + h + 10, x - 10 : x + w + 10] = 128  # the detector loses it
    gray = to_gray(cv2.resize(face, (128, 128)))
    shape = gray.shape

    def protected(clock: float) -> float:
        faces = tracker.update(covered if clock > 0 else face, gray, clock)
        return float(face_mask(shape, faces, clock).max())

    assert protected(0.0) == pytest.approx(1.0, abs=0.02)
    assert protected(0.5) == pytest.approx(1.0, abs=0.02)  # held: no blink
    assert protected(0.95) == pytest.approx(1.0, abs=0.02)
    assert 0.2 < protected(1.25) < 0.8  # fading
    assert protected(1.6) == 0.0 and tracker.faces == ()  # gone
