"""Faces kept readable: on a real face (scikit-image's astronaut) the dream is mostly kept off
the face, also while the head turns, tilts or enters the picture and from the first dream of a
live run; ``--face-strength 1`` and the ``k`` key give exactly the unprotected picture; the
tracker keeps a face the detector misses while the flow follows it and drops it when the flow
loses it or the scene cuts. Real model (vgg16_hed) at small sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DREAM
from faceclips import CallClip, FramesSource, face_and_background
from helpers import FACE_BOX, face_photo, region_means

from livedream.compositor import Compositor, Keyframe
from livedream.config import LIVE_FACE_STRENGTH
from livedream.controls import Controls
from livedream.dream import Dreamer, DreamStep
from livedream.faces import DETECT_EVERY_S, Face, FaceTracker, HaarDetector
from livedream.pipeline import LivePipeline, RenderPipeline, make_pipeline
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


@pytest.fixture(scope="module")
def rendered(photo_path: Path, shared_step: DreamStep) -> Callable[..., list[np.ndarray]]:
    """``render`` of the photo, each setting rendered once for the module (the tests compare
    the same renders; none changes the frames it gets)."""
    done: dict[tuple[float, bool, bool], list[np.ndarray]] = {}

    def get(*, strength: float, tracker: bool = True, k: bool = False) -> list[np.ndarray]:
        key = (strength, tracker, k)
        if key not in done:
            done[key] = render(photo_path, shared_step, strength=strength, tracker=tracker, k=k)
        return done[key]

    return get


def test_the_detector_finds_the_test_face() -> None:
    boxes = HaarDetector().detect(face_photo(SIZE))
    assert len(boxes) == 1
    x, y, w, _ = boxes[0]
    assert abs(x - FACE_BOX[0]) < 6 and abs(y - FACE_BOX[1]) < 6 and abs(w - FACE_BOX[2]) < 8


def test_a_face_keeps_at_most_half_the_dream_at_strength_0_2(
    rendered: Callable[..., list[np.ndarray]],
) -> None:
    original = face_photo(SIZE).astype(np.float32)
    frames = rendered(strength=0.2)
    plain = rendered(strength=1.0)
    for out, unprotected in zip(frames[2:], plain[2:], strict=True):
        inside, outside = region_means(np.abs(out - original).mean(axis=2), FACE_BOX)
        assert inside <= 0.5 * outside, (inside, outside)
        # The rest of the picture is dreamed as it would be without protection.
        plain_in, plain_out = region_means(np.abs(unprotected - original).mean(axis=2), FACE_BOX)
        assert plain_in > 2 * inside and outside == pytest.approx(plain_out, rel=0.1)


def test_strength_1_and_the_k_key_give_the_unprotected_picture(
    rendered: Callable[..., list[np.ndarray]],
) -> None:
    unprotected = rendered(strength=1.0, tracker=False)
    for frames in (rendered(strength=1.0), rendered(strength=0.2, k=True)):
        for out, plain in zip(frames, unprotected, strict=True):
            np.testing.assert_array_equal(out, plain)
    protected = rendered(strength=0.2)
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


def test_the_detector_finds_a_tilted_face_by_turning_the_picture() -> None:
    clip = CallClip()
    x, y, w, h = clip.face_box(-40)
    for roll in (-20.0, 20.0):
        frame = clip.frame(-40, roll=roll)
        assert HaarDetector(tilts=()).detect(frame) == []  # the upright cascade alone misses
        assert any(
            abs(bx + bw / 2 - (x + w / 2)) < w / 4 and abs(by + bh / 2 - (y + h / 2)) < h / 4
            for bx, by, bw, bh in HaarDetector().detect(frame)
        )


# A call at 176x144 (the size of the clip issue 20 was measured on), 30 fps, 0.9 s: the head
# turns to 60 degrees and back while drifting, then tilts by 20 degrees (100 degrees a second).
CLIP_FRAMES = 28


def motion(i: int) -> tuple[float, float, float]:
    """(x, yaw, roll) of frame ``i``."""
    if i < 16:
        return -25 + 8 * np.sin(i / 4), 60 * np.sin(np.pi * i / 15), 0.0
    return -25.0, 0.0, 20 * min(1.0, (i - 16) / 6)


CALL_DREAM = replace(SHARED_DREAM, dream_size=(88, 72), step_size=0.04, steps=2)


def render_clip(
    step: DreamStep,
    *,
    strength: float,
    live: bool = False,
    frames: int = CLIP_FRAMES,
) -> list[tuple[np.ndarray, np.ndarray, tuple[float, ...], bool]]:
    """The clip through the pipeline with faces protected at ``strength``: (input, output,
    the face's box, whether it carries a dream) per frame."""
    clip = CallClip(176, 144)
    made: dict[int, np.ndarray] = {}

    def make(i: int) -> np.ndarray:
        x, yaw, roll = motion(i)
        made[i] = clip.frame(x, yaw=yaw, roll=roll)
        return made[i]

    dream = resolve_here(CALL_DREAM)
    controls = Controls.from_dream(dream, face_strength=strength)
    controls.steps, controls.step_size = CALL_DREAM.steps, CALL_DREAM.step_size
    with make_pipeline(
        FramesSource(make, frames, live=live),  # a live source: playback never waits
        lambda: Dreamer(dream, step=step),
        live=live,
        pace_fps=30.0 if live else None,
        controls=controls,
        dream_every=3,
        faces=FaceTracker(),
    ) as pipeline:
        out = [
            (made[i.index], i.image, clip.face_box(*motion(i.index)[:2]), i.dreamed)
            for i in pipeline
        ]
    assert pipeline.error is None
    return out


def visible(box: tuple[float, ...], width: int = 176, height: int = 144) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and x + w <= width and y + h <= height


def test_a_face_stays_protected_while_it_turns_and_tilts(shared_step: DreamStep) -> None:
    frames = render_clip(shared_step, strength=0.2)
    ratios = []
    for frame, out, box, dreamed in frames:
        if dreamed and visible(box):
            face, background = face_and_background(out, frame, box)
            ratios.append(face / background)
    assert len(ratios) >= CLIP_FRAMES - 1  # all but the first (no keyframe yet)
    # Issue 20's bar: <= 0.5 of the background's dream in 90% of the frames, <= 0.8 in all.
    assert np.mean(np.array(ratios) <= 0.5) >= 0.9 and max(ratios) <= 0.8, np.round(ratios, 2)


class FirstOnly:
    """A detector that finds faces on its first call only: what the tracker keeps after that
    it keeps by flow alone."""

    def __init__(self) -> None:
        self.detector, self.calls = HaarDetector(), 0
        self.tilts = self.detector.tilts

    def detect(
        self, frame: np.ndarray, *, tilts: tuple[float, ...] | None
    ) -> list[tuple[float, float, float, float]]:
        self.calls += 1
        return self.detector.detect(frame, tilts=tilts) if self.calls == 1 else []


def follow(frames: list[np.ndarray], fps: float = 6.0) -> list[tuple[Face, ...]]:
    """The faces a tracker whose detector finds them on the first frame only gives each
    frame, keyframes ``fps`` a second, dreamed at half the frame's size."""
    tracker = FaceTracker(FirstOnly())  # type: ignore[arg-type]
    out = []
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        gray = to_gray(cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        out.append(tracker.update(frame, gray, i / fps))
    return out


def test_a_face_that_enters_is_found_within_a_detection_interval() -> None:
    clip = CallClip(176, 144)
    xs = [max(-25.0, 130 - 16 * i) for i in range(24)]  # in from the right, all in by frame 8
    frames = [clip.frame(x) for x in xs]
    tracker = FaceTracker()
    found = []
    for i, frame in enumerate(frames):  # every frame a keyframe, 30 a second
        gray = to_gray(cv2.resize(frame, (88, 72), interpolation=cv2.INTER_AREA))
        found.append(len(tracker.update(frame, gray, i / 30)) == 1)
    first = found.index(True)
    assert 8 <= first <= 8 + round(30 * DETECT_EVERY_S) and all(found[first:])


def test_the_tracker_keeps_a_face_the_detector_misses_while_the_flow_follows_it() -> None:
    clip = CallClip(176, 144)
    steps = [(-25 + 3 * i, 40 * np.sin(i / 4)) for i in range(18)]  # 3 s: drifts and turns
    tracked = follow([clip.frame(x, yaw=yaw) for x, yaw in steps])
    for faces, (x, yaw) in zip(tracked, steps, strict=True):
        assert len(faces) == 1 and faces[0].until == 10.0  # kept, fully (until CONFIRM_S)
        bx, _, bw, _ = (v / 2 for v in clip.face_box(x, yaw))
        assert abs(faces[0].centre[0] - (bx + bw / 2)) < bw / 4, (x, yaw)


def test_a_face_is_dropped_when_the_flow_loses_it_it_leaves_or_the_scene_cuts() -> None:
    clip = CallClip(176, 144)
    x, y, w, h = (round(v) for v in clip.face_box(-25))
    noise = np.random.default_rng(0)

    def hidden(i: int) -> np.ndarray:  # a flicker over the face no flow can follow
        frame = clip.frame(-25)
        frame[y - 5 : y + h + 5, x - 5 : x + w + 5] = noise.integers(0, 255, (h + 10, w + 10, 1))
        return frame

    lost = follow([clip.frame(-25), *(hidden(i) for i in range(6))])
    assert len(lost[1]) == 1 and lost[1][0].until == pytest.approx(1 / 6)  # lost: fading
    assert 0 < lost[3][0].weight(3 / 6) < 1
    assert lost[-1] == ()  # faded out (FADE_S after it was lost)
    left = follow([clip.frame(-25 - 10 * i) for i in range(14)])  # slides out on the left
    assert len(left[5]) == 1 and left[5][0].until == 10.0
    assert left[-1] == ()
    cut = follow([clip.frame(-25), clip.frame(-25), cv2.flip(clip.frame(-25), -1)])
    assert len(cut[1]) == 1 and cut[2] == ()  # at once, no fade


def test_the_first_dreams_of_a_live_run_spare_a_tilted_face(shared_step: DreamStep) -> None:
    clip = CallClip(176, 144)
    frame = clip.frame(-25, yaw=20.0, roll=25.0)  # the upright cascade alone misses it
    box = clip.face_box(-25, 20.0)
    dream = resolve_here(CALL_DREAM)
    controls = Controls.from_dream(dream, face_strength=LIVE_FACE_STRENGTH)
    controls.steps, controls.step_size = CALL_DREAM.steps, CALL_DREAM.step_size
    dreamed = []
    with LivePipeline(
        FramesSource(lambda i: frame, 3000, live=True),
        lambda: Dreamer(dream, step=shared_step),
        pace_fps=30.0,
        controls=controls,
        faces=FaceTracker(),
    ) as pipeline:
        for item in pipeline:
            if item.dreamed:
                dreamed.append(face_and_background(item.image, frame, box))
                if len(dreamed) == 10:
                    break
    assert pipeline.error is None and len(dreamed) == 10
    face, background = np.mean(dreamed, axis=0)
    assert face <= 0.6 * background, dreamed
