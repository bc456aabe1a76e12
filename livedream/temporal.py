"""Temporal carry: the previous frame's dream, warped onto the current frame by optical flow.

Flow is OpenCV's DIS (about 1 ms at 320x240). Where the forward and backward flows disagree
(occlusion, fast motion) the carried dream fades, so ghosts do not smear across moving edges.
Also the flicker measure shared by the tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

Flow = np.ndarray  # (H, W, 2) float32, in pixels


class FlowEstimator:
    """DIS optical flow between grey frames of one size. Not thread-safe: one per thread."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]

    def flow(self, src: np.ndarray, dst: np.ndarray) -> Flow:
        """Flow f with src(x) ~ dst(x + f(x)); both (H, W) uint8."""
        return self._dis.calc(src, dst, None)  # type: ignore[no-any-return]

    def back_and_trust(
        self,
        current: np.ndarray,
        previous: np.ndarray,
        coords: np.ndarray,
        *,
        tolerance: float = 1.0,
    ) -> tuple[Flow, np.ndarray]:
        """The flow from ``current`` back to ``previous`` and how far to trust it per pixel.

        Args:
            current, previous: (H, W) uint8 grey frames.
            coords: ``grid(H, W)``.
            tolerance: round-trip error in pixels still trusted fully (``consistency``).

        Returns:
            (flow to warp the previous frame onto the current one, ``consistency`` mask).
        """
        back = self.flow(current, previous)
        fwd = self.flow(previous, current)
        return back, consistency(back, fwd, coords, tolerance=tolerance)


def grid(height: int, width: int) -> np.ndarray:
    """Pixel coordinates (H, W, 2) float32, x then y."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


def warp(image: np.ndarray, flow: Flow, coords: np.ndarray | None = None) -> np.ndarray:
    """Samples ``image`` at x + flow(x): brings a previous frame onto the current one.

    Args:
        image: (H, W, C) or (H, W) array of the previous frame.
        flow: flow from the current frame to the previous one (``flow(cur, prev)``).
        coords: ``grid(H, W)``, passed in to avoid rebuilding it every frame.
    """
    h, w = flow.shape[:2]
    maps = (coords if coords is not None else grid(h, w)) + flow
    out: np.ndarray = cv2.remap(
        image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def magnitude(flow: Flow) -> np.ndarray:
    """Length (H, W) float32 of each flow vector; OpenCV's is ~10x numpy's sqrt of squares."""
    out: np.ndarray = cv2.magnitude(flow[..., 0], flow[..., 1])
    return out


def consistency(
    flow_back: Flow, flow_fwd: Flow, coords: np.ndarray | None = None, *, tolerance: float = 1.0
) -> np.ndarray:
    """Soft mask (H, W) float32 in [0, 1]: 1 where following the flow back and forth returns home.

    Args:
        flow_back: flow from the current frame to the previous one.
        flow_fwd: flow from the previous frame to the current one.
        tolerance: round-trip error in pixels (plus 5% of the motion) still trusted fully.
    """
    round_trip = flow_back + warp(flow_fwd, flow_back, coords)
    error = magnitude(round_trip)
    motion = magnitude(flow_back)
    limit = tolerance + 0.05 * motion
    # Full trust below the limit, none past twice the limit, linear in between.
    mask: np.ndarray = np.clip(2.0 - error / limit, 0.0, 1.0).astype(np.float32)
    return mask


class FlowCarry:
    """Carries a dream residual from frame to frame. Used by the dream thread only.

    ``carry(gray)`` gives the previous residual warped onto the current frame and faded where the
    flow is unreliable; ``update(gray, residual)`` stores this frame's residual.
    """

    def __init__(self, *, tolerance: float = 1.0) -> None:
        self.tolerance = tolerance  # round-trip error (px) of the flow still trusted fully
        self._estimator = FlowEstimator()
        self._prev_gray: np.ndarray | None = None
        self._prev_residual: np.ndarray | None = None
        self._coords: np.ndarray | None = None
        self.last_motion: float | None = None  # mean flow (px) of the last carry; None: none

    def reset(self) -> None:
        """Drops the carried dream: the next ``carry()`` gives None, so that frame is dreamed
        from itself. The dreamer calls it on the ``r`` key, on a new layer set and while the
        dream is off."""
        self._prev_gray = None
        self._prev_residual = None

    def carry(self, gray: np.ndarray, *, blend: float, flow: bool = True) -> np.ndarray | None:
        """The carried residual (H, W, 3) float32 for the frame ``gray`` (H, W) uint8, or None.

        Args:
            gray: the current small frame, grey.
            blend: share of the carried residual kept; 0 carries nothing.
            flow: warp by optical flow; False carries the residual in place.
        """
        prev, residual = self._prev_gray, self._prev_residual
        self.last_motion = None
        if prev is None or residual is None or blend <= 0:
            return None
        if prev.shape != gray.shape:  # the dream size changed: the dream so far is resampled
            size = (gray.shape[1], gray.shape[0])
            prev = cv2.resize(prev, size, interpolation=cv2.INTER_AREA)
            residual = cv2.resize(residual, size, interpolation=cv2.INTER_LINEAR)
        if not flow:
            return residual * np.float32(blend)
        h, w = gray.shape
        if self._coords is None or self._coords.shape[:2] != (h, w):
            self._coords = grid(h, w)
        back, mask = self._estimator.back_and_trust(
            gray, prev, self._coords, tolerance=self.tolerance
        )
        self.last_motion = float(magnitude(back).mean())
        warped = warp(residual, back, self._coords)
        carried: np.ndarray = warped * (mask * np.float32(blend))[..., None]
        return carried

    def update(self, gray: np.ndarray, residual: np.ndarray) -> None:
        """Stores this frame's grey image (H, W) uint8 and dream residual (H, W, 3) float32."""
        self._prev_gray = gray
        self._prev_residual = residual


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR, uint8 or float in [0, 255] -> (H, W) uint8 grey."""
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # type: ignore[no-any-return]


def flicker(
    inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], *, width: int = 320
) -> dict[str, float]:
    """How much a dreamed clip flickers, so that a stronger dream is not punished for strength.

    strength = mean |out - in|; temporal error = mean |out_t - warp(out_{t-1})| over the pixels
    where the input's own forward-backward flow is consistent; floor = the same error of the input;
    flicker = (temporal error - floor) / strength. Frames are compared at ``width`` pixels wide.

    Args:
        inputs, outputs: matching (H, W, 3) uint8 BGR frames, in order.

    Returns:
        dict with ``flicker``, ``strength``, ``temporal_error`` and ``floor``.
    """
    estimator = FlowEstimator(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    coords: np.ndarray | None = None
    strengths, errors, floors = [], [], []
    prev_in: np.ndarray | None = None
    prev_out: np.ndarray | None = None
    for frame_in, frame_out in zip(inputs, outputs, strict=True):
        h, w = frame_in.shape[:2]
        size = (width, max(2, round(h * width / w)))
        cur_in = cv2.resize(frame_in, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        cur_out = cv2.resize(frame_out, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        strengths.append(float(np.abs(cur_out - cur_in).mean()))
        if prev_in is not None and prev_out is not None:
            if coords is None:
                coords = grid(size[1], size[0])
            back, trust = estimator.back_and_trust(to_gray(cur_in), to_gray(prev_in), coords)
            trusted = trust >= 1.0
            if trusted.any():
                err_out = np.abs(cur_out - warp(prev_out, back, coords)).mean(axis=2)
                err_in = np.abs(cur_in - warp(prev_in, back, coords)).mean(axis=2)
                errors.append(float(err_out[trusted].mean()))
                floors.append(float(err_in[trusted].mean()))
        prev_in, prev_out = cur_in, cur_out
    strength = float(np.mean(strengths)) if strengths else 0.0
    temporal_error = float(np.mean(errors)) if errors else 0.0
    floor = float(np.mean(floors)) if floors else 0.0
    score = (temporal_error - floor) / strength if strength > 0 else 0.0
    return {
        "flicker": score,
        "strength": strength,
        "temporal_error": temporal_error,
        "floor": floor,
    }
