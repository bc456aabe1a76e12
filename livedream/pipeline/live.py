"""The live pipeline: every captured frame goes out at once, the dream refreshed behind it.

For a camera, a stream, the preview, the virtual camera and ``--realtime``. Who does what:

- capture thread: hands each frame to the caller's queue (``LIVE_QUEUE`` deep; a caller too
  slow pushes the oldest out: ``dropped``) and the newest one to the dream thread (newest
  wins: the others are ``skipped``).
- dream thread: applies the controls, dreams the newest frame into a keyframe and publishes it
  to the compositor. It never composites.
- the compositor runs in the thread that calls ``next_frame()`` (run.py: the main thread, the
  one that writes the outputs): each frame gets the newest keyframe there, as it goes out.

Frames before the first keyframe (or after a reset or a scene cut) go out as they are. A source
that can wait (a file, a photo) starts its playback once the first keyframe is dreamed, so its
first frame out is already dreamed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.faces import FaceTracker
from livedream.pipeline.core import Pipeline
from livedream.queues import POLL, put_newest
from livedream.sources import Source
from livedream.stats import Stats, TimedFrame

# Round-trip error (px) of the flow between two keyframes still trusted fully (one frame to the
# next: 1 px). On bikes.mp4, keyframes 6 frames apart and 4 late, 3 px kept 7% more of the dream
# (1.59 vs 1.48) at the same flicker (0.271 vs 0.272).
LIVE_CARRY_TOLERANCE = 3.0
LIVE_QUEUE = 8  # frames waiting for the caller in a live run: ~0.25 s at 30 fps, then drops


class LivePipeline(Pipeline):
    """Every captured frame out at once; the compositor runs in ``next_frame``'s thread.

    Args (besides ``Pipeline``'s):
        wait_for_dream: playback starts with the first keyframe (default: for a source that
            can wait, a file or a photo; a camera never waits).
    """

    dream_queue_size = 1  # the newest frame only
    out_queue_size = LIVE_QUEUE

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
        wait_for_dream: bool | None = None,
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
        self.wait_for_dream = (not source.is_live) if wait_for_dream is None else wait_for_dream

    @property
    def waits_for_model(self) -> bool:
        return self.wait_for_dream

    # -- capture thread -------------------------------------------------------------------------
    def _hand_off(self, frame: TimedFrame) -> bool:
        stats = self.stats
        # The dream gets its own record: the caller replaces ``image`` of this one.
        put_newest(self._to_dream, replace(frame), stats.count_skip)
        if frame.index == 0 and self.wait_for_dream:
            if not self._first_keyframe():
                return False
            frame.captured = time.perf_counter()  # the playback starts now
        put_newest(self._out, frame, stats.count_drop)
        return True

    def _end_capture(self) -> None:
        put_newest(self._to_dream, None, self.stats.count_skip)
        put_newest(self._out, None, self.stats.count_drop)

    def _first_keyframe(self) -> bool:
        """Waits until the first keyframe is published; False when the pipeline stopped."""
        while not self._keyframed.wait(POLL):
            if self.done.is_set():
                return False
        return True

    # -- dream thread ---------------------------------------------------------------------------
    def _built(self, dreamer: Dreamer) -> None:
        # Keyframes lie several frames apart: trust their flow a little more.
        dreamer.carry.tolerance = LIVE_CARRY_TOLERANCE

    def _take(self, item: TimedFrame) -> bool:
        """The newest frame becomes the next keyframe."""
        dreamer = self._apply_controls(item.captured)
        if not dreamer.enabled:  # dream off: frames go out as they are
            self.compositor.reset(item.captured)
            self._keyframed.set()
            return True
        self._dream(item, item.captured)
        return True

    def _end_dream(self) -> None:
        pass  # the capture thread ends the caller's queue: every frame goes out through it

    # -- the thread calling next_frame(): the compositor ----------------------------------------
    def _deliver(self, item: TimedFrame) -> None:
        """Composites ``item`` with the newest keyframe, as it goes out."""
        if not self._keyframed.is_set():
            self._before_first_keyframe(item)
        stats = self.stats
        keyframe = self.compositor.keyframe
        item.image, item.dreamed = self._composite(item, item.captured)
        stats.compositor_seconds.append(self.compositor.last_ms / 1000.0)
        if item.dreamed and keyframe is not None:
            stats.dream_ages.append(time.perf_counter() - keyframe.captured)

    def _before_first_keyframe(self, item: TimedFrame) -> None:
        """A frame that goes out before the first keyframe (the model still loading or
        compiling), in the thread calling ``next_frame``. Nothing yet: the place for work
        that must not wait for the dream (e.g. finding faces early)."""
