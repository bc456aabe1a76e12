"""The render pipeline: a file rendered to a file, nothing lost or reordered.

Who does what:

- capture thread: hands every frame to the dream thread in order, waiting for room.
- dream thread: applies the controls, dreams every ``dream_every``-th frame into a keyframe
  (and any frame after a scene cut), and runs the compositor on every frame: the dream thread
  is this pipeline's compositor thread. Finished frames go to the caller's queue in order.
- the caller's ``next_frame()`` only takes finished frames.

A keyframe's age is measured on the input's own clock (its timestamps, else its frame rate),
so the render does not depend on how fast this machine dreams.
"""

from __future__ import annotations

from collections.abc import Callable

from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.faces import FaceTracker
from livedream.media import DEFAULT_FPS
from livedream.pipeline.core import Pipeline
from livedream.queues import put_waiting
from livedream.sources import Source
from livedream.stats import Stats, TimedFrame


class RenderPipeline(Pipeline):
    """Every frame dreamed or composited in order; the compositor runs in the dream thread.

    Args (besides ``Pipeline``'s):
        dream_every: dream every Nth frame and composite the rest from it (1: every frame).
    """

    def __init__(
        self,
        source: Source,
        make_dreamer: Callable[[], Dreamer],
        *,
        pace_fps: float | None = None,
        controls: Controls | None = None,
        max_frames: int | None = None,
        stats: Stats | None = None,
        faces: FaceTracker | None = None,
        dream_every: int = 1,
    ) -> None:
        super().__init__(
            source,
            make_dreamer,
            pace_fps=pace_fps,
            controls=controls,
            max_frames=max_frames,
            stats=stats,
            faces=faces,
        )
        self.dream_every = max(1, dream_every)
        self._clock = (-float("inf"), 0.0)  # the last frame's steady time, and the shift to it

    @property
    def waits_for_model(self) -> bool:
        return True  # a file waits: its frames would only queue up while the model loads

    # -- capture thread -------------------------------------------------------------------------
    def _hand_off(self, frame: TimedFrame) -> bool:
        return put_waiting(self._to_dream, frame, stop=self.done)

    def _end_capture(self) -> None:
        put_waiting(self._to_dream, None, stop=self.done)

    # -- dream thread: the dream and the compositor ------------------------------------------------
    def _built(self, dreamer: Dreamer) -> None:
        pass  # keyframes follow each other closely: the dreamer's own carry tolerance

    def _take(self, item: TimedFrame) -> bool:
        return put_waiting(self._out, self._render(item), stop=self.done)

    def _end_dream(self) -> None:
        put_waiting(self._out, None, stop=self.done)

    # -- the thread calling next_frame() ------------------------------------------------------
    def _deliver(self, item: TimedFrame) -> None:
        pass  # finished in the dream thread

    def _render(self, item: TimedFrame) -> TimedFrame:
        """Every Nth frame dreamed, each frame composited; in order."""
        # The input's own clock: a keyframe's age is how far apart the frames are in the video.
        fps = self.source.fps or DEFAULT_FPS
        clock = item.pts if item.pts is not None else item.index / fps
        # Steady when the input's clock jumps back (files joined): a keyframe's time must not
        # fall before a reset made ahead of the jump, or it would be ignored as stale.
        last, shift = self._clock
        if clock + shift <= last:
            shift = last + 1 / fps - clock
        clock += shift
        self._clock = (clock, shift)
        dreamer = self._apply_controls(clock)
        if not dreamer.enabled:
            self.compositor.reset(clock)
            return item
        if item.index % self.dream_every == 0 or self.compositor.keyframe is None:
            self._dream(item, clock)
        item.image, item.dreamed = self._composite(item, clock)
        if not item.dreamed:  # a scene cut between keyframes: dream this frame afresh
            self._dream(item, clock)
            item.image, item.dreamed = self._composite(item, clock)
        return item
