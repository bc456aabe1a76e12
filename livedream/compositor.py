"""The compositor: every camera frame gets the newest dream, warped onto it by optical flow.

The dream thread publishes a ``Keyframe`` whenever it finishes one (the small grey picture it
dreamed, the dream residual it added, when that picture was captured). Each output frame then
takes that residual along the flow from itself *straight to the keyframe* (never chained frame
to frame, so nothing drifts), weighted by

- trust: the forward-backward consistency of that flow, times how well the keyframe's pixel it
  points at matches (zero where the keyframe's pixels are occluded or the flow lost them: those
  show the raw frame, never a ghost),
- a fade with the keyframe's age times the motion since it, so a dream that falls far behind a
  moving scene fades instead of smearing,

and is reset on a scene cut (most of the frame untrusted): frames go out as they are until a
keyframe captured after the cut arrives. The residual is upscaled and added to the full frame,
so the output keeps the camera's sharpness.

    compositor.publish(keyframe)                       # dream thread
    out, dreamed = compositor.composite(frame, now)    # the thread that outputs frames
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from livedream.config import protecting
from livedream.faces import Face, face_mask, keep_map
from livedream.media import Frame
from livedream.temporal import FlowEstimator, consistency, grid, magnitude, to_gray, warp

# Pixels of motion (at the dream size) times seconds of keyframe age that fade the residual
# to 1/e: a keyframe 0.3 s old keeps ~70% where things moved 10 px since, all of it where
# nothing moved; one 2 s behind a fast pan is all but gone.
FADE_PX_S = 10.0
# Share of the frame whose flow to the keyframe is trusted, below which it is a new scene.
CUT_TRUST = 0.2
# Grey levels (0..255) a pixel may differ from the keyframe pixel its flow points at and still
# be fully trusted; twice that and it is not trusted at all (something new is there).
MATCH_TOLERANCE = 12.0
# Round-trip error (px at the dream size, plus 5% of the motion) of the flow to the keyframe
# still trusted fully. Twice the frame-to-frame carry's 1 px: this flow spans several frames.
# On bikes.mp4 with keyframes 4 frames apart it kept 7% more of the dream (2.08 vs 1.95 of
# 2.36 fresh), 8 frames apart and 0.4 s late 33% more (0.56 vs 0.42), flicker unchanged
# (0.269 vs 0.269; 0.259 vs 0.263), and fewer false cuts from an old keyframe.
TRUST_TOLERANCE_PX = 2.0
# The flow to the keyframe is found at most this wide: DIS at 320 px follows as well as at the
# dream size and costs a third at 564 px (the bundled clip's dream width).
FLOW_WIDTH = 320


@dataclass(frozen=True)
class Keyframe:
    """One dreamed frame, as the compositor uses it.

    Attributes:
        gray: (h, w) uint8, the keyframe's input at the dream size, grey.
        residual: (h, w, 3) float32, what the dream added to it (BGR, 0..255 units).
        captured: ``time.perf_counter()`` when its frame was captured.
        index: its frame's number in the stream.
        faces: the faces in it (``livedream.faces``), in its pixels; () when not looked for.
    """

    gray: np.ndarray
    residual: np.ndarray
    captured: float
    index: int
    faces: tuple[Face, ...] = ()


def add_residual(frame: Frame, residual: np.ndarray) -> Frame:
    """``frame`` plus ``residual`` upscaled to its size: (H, W, 3) uint8 BGR."""
    h, w = frame.shape[:2]
    if residual.shape[:2] != (h, w):
        residual = cv2.resize(residual, (w, h), interpolation=cv2.INTER_LINEAR)
    # One saturating pass (rounded, clipped to 0..255): half the time of numpy's three.
    out: Frame = cv2.add(frame, residual.astype(np.float32, copy=False), dtype=cv2.CV_8U)
    return out


class Compositor:
    """Warps the newest keyframe's dream onto each frame. ``publish`` and ``reset`` may come
    from any thread; ``composite`` from one thread (it owns the flow estimator).

    Args:
        fade_px_s: motion (px at the dream size) x age (s) that fades the residual to 1/e.
        cut_trust: below this share of trusted pixels a frame starts a new scene.
        trust_tolerance: round-trip flow error (px) still trusted fully.
    """

    def __init__(
        self,
        *,
        fade_px_s: float = FADE_PX_S,
        cut_trust: float = CUT_TRUST,
        trust_tolerance: float = TRUST_TOLERANCE_PX,
    ) -> None:
        self.fade_px_s = fade_px_s
        self.cut_trust = cut_trust
        self.trust_tolerance = trust_tolerance
        self._lock = threading.Lock()
        self._keyframe: Keyframe | None = None
        self._reset_at = -float("inf")  # keyframes captured before this are stale
        self._estimator = FlowEstimator()
        self._coords: np.ndarray | None = None
        self._dream_coords: np.ndarray | None = None
        self._key_small: tuple[Keyframe, np.ndarray] | None = None
        self.cuts = 0  # scene cuts seen
        self.last_ms = 0.0  # what the last composite() cost
        self.last_faces = 0  # faces protected on the last frame
        self.last_face_ms = 0.0  # what the last frame's face mask cost
        self._mask_key: tuple[object, ...] | None = None
        self._mask: np.ndarray | None = None  # the protected residual of the newest keyframe

    @property
    def keyframe(self) -> Keyframe | None:
        """The keyframe frames are composited with now, or None (frames go out raw)."""
        return self._keyframe

    def publish(self, keyframe: Keyframe) -> None:
        """Makes ``keyframe`` the dream every following frame gets; any thread.

        A keyframe captured before the last reset or cut is ignored: it shows another scene.
        """
        with self._lock:
            if keyframe.captured >= self._reset_at:
                self._keyframe = keyframe

    def reset(self, at: float | None = None) -> None:
        """Drops the keyframe: frames go out raw until one captured after ``at`` (now)."""
        with self._lock:
            self._keyframe = None
            self._reset_at = time.perf_counter() if at is None else at

    def composite(
        self, frame: Frame, captured: float, index: int = -1, *, face_strength: float = 1.0
    ) -> tuple[Frame, bool]:
        """``frame`` with the newest dream on it.

        Args:
            frame: (H, W, 3) uint8 BGR.
            captured: its capture time (``time.perf_counter()``).
            index: its frame number; the keyframe's own frame needs no flow.
            face_strength: the share of the dream kept on the keyframe's faces (1: all). The
                mask moves with the residual, along the same flow; only what is added to this
                frame is scaled, never the keyframe's own residual (the dream's carry).

        Returns:
            (the output frame, whether it carries a dream). Without a keyframe (before the
            first, after a reset or a cut) the frame itself, unchanged.
        """
        started = time.perf_counter()
        keyframe = self._keyframe
        self.last_faces, self.last_face_ms = 0, 0.0
        if keyframe is None:
            self.last_ms = 0.0
            return frame, False
        protected = self._protected(keyframe, captured, face_strength)
        residual: np.ndarray | None = protected
        if index != keyframe.index:
            residual = self._follow(frame, captured, keyframe, protected)
        if residual is None:
            self.last_ms = 1000.0 * (time.perf_counter() - started)
            return frame, False
        out = add_residual(frame, residual)
        self.last_ms = 1000.0 * (time.perf_counter() - started)
        return out, True

    def _protected(self, keyframe: Keyframe, captured: float, strength: float) -> np.ndarray:
        """The keyframe's residual with only ``strength`` of it kept on its faces, at the
        keyframe's own pixels: a copy, so the dream's carry is never scaled. The flow then
        moves the protection onto each frame together with the dream it protects. Made once
        per keyframe (again only while a lost face fades)."""
        if not protecting(strength) or not keyframe.faces:
            return keyframe.residual
        started = time.perf_counter()
        weights = tuple(round(f.weight(captured), 2) for f in keyframe.faces)
        self.last_faces = sum(1 for weight in weights if weight > 0)
        key = (keyframe.index, keyframe.captured, weights, strength)
        if key != self._mask_key or self._mask is None:
            keep = keep_map(face_mask(keyframe.gray.shape, keyframe.faces, captured), strength)
            self._mask, self._mask_key = keyframe.residual * keep[..., None], key
        self.last_face_ms = 1000.0 * (time.perf_counter() - started)
        return self._mask

    def _follow(
        self, frame: Frame, captured: float, keyframe: Keyframe, residual: np.ndarray
    ) -> np.ndarray | None:
        """``residual`` (the keyframe's) moved onto ``frame``, or None on a scene cut.

        The flow that moves the dream is found at the dream size; the check of it (the flow
        back, for the round trip) at most ``FLOW_WIDTH`` wide, where it costs a third at the
        bundled clip's 564 px and a trust mask needs no finer detail.
        """
        h, w = keyframe.gray.shape
        small = frame
        if frame.shape[:2] != (h, w):
            small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        gray = to_gray(small)
        if self._dream_coords is None or self._dream_coords.shape[:2] != (h, w):
            self._dream_coords = grid(h, w)
        back = self._estimator.flow(gray, keyframe.gray)  # this frame -> the keyframe
        fw = min(w, FLOW_WIDTH)
        fh = max(2, round(h * fw / w))
        scale = w / fw
        if (fw, fh) == (w, h):
            gray_s, back_s = gray, back
        else:
            gray_s = cv2.resize(gray, (fw, fh), interpolation=cv2.INTER_AREA)
            back_s = cv2.resize(back, (fw, fh), interpolation=cv2.INTER_AREA) / np.float32(scale)
        key_s = self._key_gray(keyframe, (fw, fh))
        if self._coords is None or self._coords.shape[:2] != (fh, fw):
            self._coords = grid(fh, fw)
        fwd_s = self._estimator.flow(key_s, gray_s)
        trust = consistency(back_s, fwd_s, self._coords, tolerance=self.trust_tolerance / scale)
        seen = warp(key_s, back_s, self._coords)  # the keyframe as this frame sees it
        mismatch = np.abs(gray_s.astype(np.float32) - seen)
        trust *= np.clip(2.0 - mismatch / MATCH_TOLERANCE, 0.0, 1.0)
        if float(trust.mean()) < self.cut_trust:
            self.cuts += 1
            self.reset(captured)
            return None
        age = max(0.0, captured - keyframe.captured)
        motion = magnitude(back_s) * np.float32(scale)  # (fh, fw) px at the dream size
        weight = trust * np.exp(-(age / self.fade_px_s) * motion)
        if (fw, fh) != (w, h):
            weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
        warped: np.ndarray = warp(residual, back, self._dream_coords)
        warped *= weight[..., None]
        return warped

    def _key_gray(self, keyframe: Keyframe, size: tuple[int, int]) -> np.ndarray:
        """The keyframe's grey picture at the flow size (made once per keyframe)."""
        if self._key_small is None or self._key_small[0] is not keyframe:
            gray = keyframe.gray
            if (gray.shape[1], gray.shape[0]) != size:
                gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            self._key_small = (keyframe, gray)
        return self._key_small[1]
