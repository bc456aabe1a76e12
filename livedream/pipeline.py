"""Threads and queues: capture -> dream -> compositor -> the caller's sinks.

The capture thread reads a ``Source``; the dream thread builds the model (so the main thread
stays free for the window, the terminal and Ctrl-C) and dreams; the caller (the main thread,
which owns the preview window) iterates the pipeline and hands each frame to its sinks::

    for frame in pipeline:            # TimedFrame: image, capture time, dreamed or not
        outputs.write(frame.image)

Two ways of running, chosen by ``live``:

- **live** (a camera, a stream, the preview, the virtual camera, ``--realtime``): every captured
  frame goes out at once. The capture thread hands each frame to the output queue and the newest
  one to the dream thread (newest wins: the others are ``skipped``). The dream thread refreshes a
  keyframe from it and publishes it to the compositor; the caller's ``next_frame()`` composites
  each frame with the newest keyframe. Frames before the first keyframe (or after a reset or a
  scene cut) go out as they are. A source that can wait (a file, a photo) starts its playback
  once the first keyframe is dreamed, so its first frame out is already dreamed.
- **file render** (a file rendered to a file): nothing is lost or reordered; every frame is
  dreamed (``dream_every=1``), or every Nth and the frames between composited from it.

``None`` marks the end of a stream on every queue. Failures: a source that fails mid-run (a
webcam unplugged) ends the stream like its end would, so every frame already captured is still
delivered; the error waits in ``error`` for the caller. A dream that fails stops everything at
once. Neither logs a traceback: the caller reports ``error`` in one line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from livedream.compositor import Compositor, Keyframe
from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.errors import AcceleratorMemoryError
from livedream.faces import FaceTracker
from livedream.media import DEFAULT_FPS
from livedream.queues import POLL, Queue, put_newest, put_waiting
from livedream.sources import Source
from livedream.stats import RateMeter, Stats, TimedFrame

__all__ = ["Pipeline", "RateMeter", "Stats", "TimedFrame"]

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 1.0  # seconds all threads together get to stop: shutdown stays under 2 s
IDLE_POLL = 0.02  # seconds the consumer waits for a frame before calling on_idle
# Round-trip error (px) of the flow between two keyframes still trusted fully (one frame to the
# next: 1 px). On bikes.mp4, keyframes 6 frames apart and 4 late, 3 px kept 7% more of the dream
# (1.59 vs 1.48) at the same flicker (0.271 vs 0.272).
LIVE_CARRY_TOLERANCE = 3.0
LIVE_QUEUE = 8  # frames waiting for the caller in a live run: ~0.25 s at 30 fps, then drops


class Pipeline:
    """Capture and dream threads around a source. A context manager; ``stop()`` is idempotent.

    Args:
        source: where frames come from; closed by ``stop()``.
        make_dreamer: builds the ``Dreamer`` in the dream thread (model load and compile).
        live: every captured frame out at once, the dream refreshed behind (see above);
            False: a file render, where nothing is lost.
        pace_fps: read the source at this rate (a file or photo played live); None: as it comes.
        controls: the live settings (keys): mirror is applied as frames enter, the rest by
            the dream thread. None: the dreamer keeps its config's settings.
        max_frames: stop capturing after this many frames.
        dream_every: a file render dreams every Nth frame and composites the rest.
        wait_for_dream: a live run's playback starts with the first keyframe (default: for a
            source that can wait, a file or a photo; a camera never waits).
        faces: finds and follows the faces of each keyframe, whose dream is then kept at
            ``controls.face_strength`` (the dream thread uses it); None: no face protection.
    """

    def __init__(
        self,
        source: Source,
        make_dreamer: Callable[[], Dreamer],
        *,
        live: bool,
        pace_fps: float | None = None,
        controls: Controls | None = None,
        max_frames: int | None = None,
        stats: Stats | None = None,
        dream_every: int = 1,
        wait_for_dream: bool | None = None,
        faces: FaceTracker | None = None,
    ) -> None:
        self.source = source
        self.live = live
        self.pace_fps = pace_fps
        self.controls = controls
        self.max_frames = max_frames
        self.dream_every = max(1, dream_every)
        self.wait_for_dream = (not source.is_live) if wait_for_dream is None else wait_for_dream
        self.stats = stats if stats is not None else Stats()
        self.compositor = Compositor()
        self.faces = faces
        self.dreamer: Dreamer | None = None
        self.error: BaseException | None = None  # the first failure of a worker thread
        self.ready = threading.Event()  # set once the model is built (or failed to build)
        self.done = threading.Event()  # set by stop(): every thread winds down
        self.on_idle: Callable[[], None] | None = None  # called while __iter__ waits
        self._make_dreamer = make_dreamer
        self._keyframed = threading.Event()  # the first keyframe is published
        self._clock = (-float("inf"), 0.0)  # render: the last frame's steady time, and the shift
        # Live: every frame to the caller, the newest to the dream. File: frames in order
        # through the dream to the caller.
        self._to_dream: Queue = queue.Queue(maxsize=1 if live else 4)
        self._out: Queue = queue.Queue(maxsize=LIVE_QUEUE if live else 4)
        self._threads: list[threading.Thread] = []
        self._ended = False
        self._lock = threading.Lock()
        self._stopped = False  # stop() joined the threads once already

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Starts the threads. Idempotent."""
        with self._lock:
            if self._threads:
                return self
            # Daemons: a thread stuck in a TensorFlow call or a camera read never blocks exit.
            self._threads = [
                threading.Thread(target=self._dream_loop, name="livedream-dream", daemon=True),
                threading.Thread(target=self._capture_loop, name="livedream-capture", daemon=True),
            ]
            try:
                for thread in self._threads:
                    thread.start()
            except BaseException:
                self.done.set()
                raise
        return self

    def stop(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Stops every thread and closes the source, within ``timeout`` seconds. Idempotent.

        A thread still busy after that (the dream inside one long TensorFlow call, a camera
        read that blocks) is left behind as a daemon: it ends on its own and touches no sink;
        a read stuck in a driver releases the device when it returns (``Source.close``).
        ``alive_threads()`` lists them.
        Frames already finished stay queued: ``next_frame(0)`` still hands them out.
        """
        self.done.set()
        self._drain(self._to_dream)  # not yet dreamed: dropped
        if self._stopped:  # the threads had their time once: a second stop() waits no more
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.debug("%s still busy after %.1f s; left as a daemon", thread.name, timeout)
        self.source.close()

    def alive_threads(self) -> list[threading.Thread]:
        """The pipeline's threads still running (none, after a clean stop)."""
        return [thread for thread in self._threads if thread.is_alive()]

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _drain(q: Queue) -> None:
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return

    def _fail(self, exc: BaseException, *, stop: bool = True) -> None:
        """Keeps the first failure for the caller; ``stop``: wind every thread down now."""
        if self.error is None:
            self.error = exc
        # The caller turns the error into one line; the traceback is for --verbose only.
        log.debug("%s failed", threading.current_thread().name, exc_info=exc)
        if stop:
            self.done.set()

    # -- consumer side (the caller's thread) -----------------------------------------------
    def next_frame(self, timeout: float = POLL) -> TimedFrame | None:
        """The next output frame, or None when none came within ``timeout``.

        Check ``ended`` after a None: it tells the end of the stream from a slow dream.
        """
        if self._ended:
            return None
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            if self.done.is_set() and not any(t.is_alive() for t in self._threads):
                self._ended = True
            return None
        if item is None:
            self._ended = True
            return None
        stats = self.stats
        if self.live:
            keyframe = self.compositor.keyframe
            item.image, item.dreamed = self._composite(item, item.captured)
            stats.compositor_seconds.append(self.compositor.last_ms / 1000.0)
            if item.dreamed and keyframe is not None:
                stats.dream_ages.append(time.perf_counter() - keyframe.captured)
        now = time.perf_counter()
        stats.output += 1
        stats.output_fps.tick(now)
        stats.latencies.append(now - item.captured)
        return item

    def __iter__(self) -> Iterator[TimedFrame]:
        """Output frames in order until the stream ends, fails or is stopped; starts the threads.

        While it waits for the next frame it calls ``on_idle`` (a preview window stays
        responsive: keys during a slow dream). After a stop (``done``), frames already
        finished stay queued for ``next_frame(0)``.
        """
        self.start()
        while not self.done.is_set():
            frame = self.next_frame(IDLE_POLL)
            if frame is not None:
                yield frame
            elif self.ended:
                return
            elif self.on_idle is not None:
                self.on_idle()

    @property
    def ended(self) -> bool:
        """True once the last frame was taken (end of input, error or stop)."""
        return self._ended

    # -- worker threads ----------------------------------------------------------------------
    def _capture_loop(self) -> None:
        stats, stop = self.stats, self.done
        period = 1.0 / self.pace_fps if self.pace_fps else 0.0
        next_time = 0.0  # when the next frame is due (paced sources), set by the first
        index = 0
        waits = self.wait_for_dream or not self.live
        try:
            # A camera is read from the start (its frames are wanted as they come); a file or
            # photo waits for the model, so its first frames are not queued for long.
            while waits and not self.ready.wait(POLL):
                if stop.is_set():
                    return
            while not stop.is_set():
                if self.max_frames is not None and index >= self.max_frames:
                    break
                if period and index:
                    delay = next_time - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        break
                    # Behind by more than a frame (a slow read): catch up, never burst.
                    next_time = max(next_time + period, time.perf_counter())
                image = self.source.read()
                if image is None:
                    break
                if self.controls is not None and self.controls.mirror:
                    image = np.ascontiguousarray(image[:, ::-1])
                now = time.perf_counter()
                if index == 0:
                    next_time = now + period
                stats.captured += 1
                stats.capture_fps.tick(now)
                frame = TimedFrame(index, image, now, self.source.position)
                if not self.live:
                    if not put_waiting(self._to_dream, frame, stop=stop):
                        return
                else:
                    # The dream gets its own record: the caller replaces ``image`` of this one.
                    put_newest(self._to_dream, replace(frame), stats.count_skip)
                    if index == 0 and self.wait_for_dream and not self._first_keyframe():
                        return
                    if index == 0 and self.wait_for_dream:
                        frame.captured = time.perf_counter()  # the playback starts now
                        next_time = frame.captured + period
                    put_newest(self._out, frame, stats.count_drop)
                index += 1
        except BaseException as exc:  # handed to the caller, never lost
            # The input is gone, not the dream: end the stream so every frame already
            # captured is still delivered.
            self._fail(exc, stop=False)
        finally:
            if self.live:
                put_newest(self._to_dream, None, stats.count_skip)
                put_newest(self._out, None, stats.count_drop)
            else:
                put_waiting(self._to_dream, None, stop=stop)

    def _first_keyframe(self) -> bool:
        """Waits until the first keyframe is published; False when the pipeline stopped."""
        while not self._keyframed.wait(POLL):
            if self.done.is_set():
                return False
        return True

    def _dream_loop(self) -> None:
        stop = self.done
        try:
            self.dreamer = self._make_dreamer()
            if self.live:  # keyframes lie several frames apart: trust their flow a little more
                self.dreamer.carry.tolerance = LIVE_CARRY_TOLERANCE
        except BaseException as exc:  # handed to the caller, never lost
            self._fail(exc)
            put_waiting(self._out, None, stop=stop)
            return
        finally:
            self.ready.set()
        try:
            while True:
                try:
                    item = self._to_dream.get(timeout=POLL)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if item is None or stop.is_set():
                    break
                if self.live:
                    self._refresh(item)
                elif not put_waiting(self._out, self._render(item), stop=stop):
                    return
        except BaseException as exc:  # handed to the caller, never lost
            self._fail(exc)
        finally:
            if not self.live:
                put_waiting(self._out, None, stop=stop)

    def _kept_on_faces(self) -> float:
        """The share of the dream kept on faces now (1: no protection)."""
        return 1.0 if self.controls is None else self.controls.kept_on_faces

    def _composite(self, item: TimedFrame, clock: float) -> tuple[np.ndarray, bool]:
        """``item`` with the newest dream on it; counts the faces protected and their cost."""
        compositor = self.compositor
        out = compositor.composite(
            item.image, clock, item.index, face_strength=self._kept_on_faces()
        )
        self.stats.faces = compositor.last_faces
        self.stats.face_mask_seconds += compositor.last_face_ms / 1000.0
        return out

    def _find_faces(self, keyframe: Keyframe, frame: np.ndarray) -> Keyframe:
        """``keyframe`` with its faces, while protection is on. Dream thread."""
        if self.faces is None or self._kept_on_faces() >= 1.0:
            return keyframe
        started = time.perf_counter()
        faces = self.faces.update(frame, keyframe.gray, keyframe.captured)
        self.stats.face_seconds += time.perf_counter() - started
        return replace(keyframe, faces=faces)

    def _apply_controls(self, dreamer: Dreamer, clock: float) -> None:
        """Applies the keys before dreaming the frame of time ``clock``."""
        controls = self.controls
        if controls is None:
            return
        reset, controls.reset = controls.reset, False  # taken once: a key press meanwhile waits
        dreamer.apply(controls)
        if reset:  # `r`: the keyframe goes with the carried dream
            self.compositor.reset(clock)
            dreamer.reset()

    def _dream(self, item: TimedFrame, clock: float) -> None:
        """Dreams ``item`` into a new keyframe and publishes it. Dream thread."""
        dreamer = self.dreamer
        assert dreamer is not None
        stats = self.stats
        started = time.perf_counter()
        try:
            keyframe = dreamer.keyframe(item.image, index=item.index, captured=clock)
        except MemoryError:  # host memory: the accelerator of a CPU run
            w, h = dreamer.config.size_for(item.image.shape[1], item.image.shape[0])
            raise AcceleratorMemoryError(
                f"out of memory dreaming at {w}x{h}: "
                "try a smaller --dream-size (e.g. 320x240) or fewer --layers"
            ) from None
        dreamt = time.perf_counter() - started
        keyframe = self._find_faces(keyframe, item.image)
        self.compositor.publish(keyframe)
        self._keyframed.set()
        stats.dream_seconds.append(dreamt)
        stats.dream_seconds_total += dreamt
        stats.dreamed += 1
        stats.dream_fps.tick()

    def _refresh(self, item: TimedFrame) -> None:
        """Live: the newest frame becomes the next keyframe."""
        assert self.dreamer is not None
        self._apply_controls(self.dreamer, item.captured)
        if not self.dreamer.enabled:  # dream off: frames go out as they are
            self.compositor.reset(item.captured)
            self._keyframed.set()
            return
        self._dream(item, item.captured)

    def _render(self, item: TimedFrame) -> TimedFrame:
        """File render: every Nth frame dreamed, each frame composited; in order."""
        assert self.dreamer is not None
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
        self._apply_controls(self.dreamer, clock)
        if not self.dreamer.enabled:
            self.compositor.reset(clock)
            return item
        if item.index % self.dream_every == 0 or self.compositor.keyframe is None:
            self._dream(item, clock)
        item.image, item.dreamed = self._composite(item, clock)
        if not item.dreamed:  # a scene cut between keyframes: dream this frame afresh
            self._dream(item, clock)
            item.image, item.dreamed = self._composite(item, clock)
        return item
