"""The capture core both pipelines share: the threads, the queues, the controls, the dream.

``Pipeline`` owns two threads and hands frames to the caller::

    capture thread  "livedream-capture"  reads the source (mirror applied), hands each frame on
    dream thread    "livedream-dream"    builds the model (the main thread stays free for the
                                         window, the terminal and Ctrl-C), applies the controls
                                         and dreams keyframes
    the caller      (any thread; run.py: the main thread) iterates the pipeline, or calls
                    ``next_frame()``, and hands each frame to its sinks

    for frame in pipeline:            # TimedFrame: image, capture time, dreamed or not
        outputs.write(frame.image)

What a subclass decides (see ``live.py`` and ``render.py``): how a captured frame is handed on
(``_hand_off``), what the dream thread does with a frame (``_take``), what ``next_frame`` does
to a frame before it goes out (``_deliver``), and so which thread runs the compositor.

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
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from livedream.compositor import Compositor, Keyframe
from livedream.config import protecting
from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.errors import AcceleratorMemoryError
from livedream.faces import FaceTracker
from livedream.queues import POLL, Queue, put_waiting
from livedream.sources import Source
from livedream.stats import Stats, TimedFrame

log = logging.getLogger(__name__)

CAPTURE_THREAD = "livedream-capture"
DREAM_THREAD = "livedream-dream"
JOIN_TIMEOUT = 1.0  # seconds all threads together get to stop: shutdown stays under 2 s
IDLE_POLL = 0.02  # seconds the consumer waits for a frame before calling on_idle


def apply_controls(
    controls: Controls | None, dreamer: Dreamer, compositor: Compositor, clock: float
) -> None:
    """Brings ``dreamer`` in line with the keys before it dreams the frame of time ``clock``.

    The one consumer of ``r``: a reset request is taken once, atomically (a press meanwhile
    waits for the next frame), and drops both the keyframe and the carried dream. Dream thread.
    """
    if controls is None:
        return
    reset = controls.take_reset()
    dreamer.apply(controls)
    if reset:
        compositor.reset(clock)
        dreamer.reset()


class Pipeline(ABC):
    """Capture and dream threads around a source. A context manager; ``stop()`` is idempotent.

    Not built directly: ``LivePipeline`` or ``RenderPipeline`` (``make_pipeline`` picks one).

    Args:
        source: where frames come from; closed by ``stop()``.
        make_dreamer: builds the ``Dreamer`` in the dream thread (model load and compile).
        pace_fps: read the source at this rate (a file or photo played live); None: as it comes.
        controls: the live settings (keys): mirror is applied as frames enter (capture
            thread), the rest before each dream (dream thread). None: the dreamer keeps its
            own settings.
        max_frames: stop capturing after this many frames.
        stats: where the run's figures go (a new ``Stats`` when None).
        faces: finds and follows the faces of each keyframe (dream thread), whose dream is
            then kept at ``controls.face_strength`` (the compositor); None: no protection.
    """

    #: Sizes of the queue to the dream thread and of the queue to the caller.
    dream_queue_size = 4
    out_queue_size = 4

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
    ) -> None:
        self.source = source
        self.pace_fps = pace_fps
        self.controls = controls
        self.max_frames = max_frames
        self.stats = stats if stats is not None else Stats()
        self.compositor = Compositor()
        self.faces = faces
        self.dreamer: Dreamer | None = None
        self.error: BaseException | None = None  # the first failure of a worker thread
        self.ready = threading.Event()  # set once the model is built (or failed to build)
        self.done = threading.Event()  # set by stop(): every thread winds down
        self.on_idle: Callable[[], None] | None = None  # called while __iter__ waits
        self._make_dreamer = make_dreamer
        self._keyframed = threading.Event()  # the first keyframe is published (or dream off)
        self._to_dream: Queue = queue.Queue(maxsize=self.dream_queue_size)
        self._out: Queue = queue.Queue(maxsize=self.out_queue_size)
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
                threading.Thread(target=self._dream_loop, name=DREAM_THREAD, daemon=True),
                threading.Thread(target=self._capture_loop, name=CAPTURE_THREAD, daemon=True),
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
        self._deliver(item)
        stats = self.stats
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

    # -- what a pipeline decides -------------------------------------------------------------
    @property
    @abstractmethod
    def waits_for_model(self) -> bool:
        """The capture thread starts reading once the model is built (a camera never waits)."""

    @abstractmethod
    def _hand_off(self, frame: TimedFrame) -> bool:
        """Hands a captured frame on. Capture thread; False: the pipeline stopped meanwhile."""

    @abstractmethod
    def _end_capture(self) -> None:
        """Puts the end marker where the capture thread's frames go. Capture thread."""

    @abstractmethod
    def _take(self, item: TimedFrame) -> bool:
        """Dreams with one frame. Dream thread; False: the pipeline stopped meanwhile."""

    @abstractmethod
    def _built(self, dreamer: Dreamer) -> None:
        """Adjusts the dreamer just built. Dream thread."""

    @abstractmethod
    def _end_dream(self) -> None:
        """Puts what goes after the dream thread's last frame. Dream thread."""

    @abstractmethod
    def _deliver(self, item: TimedFrame) -> None:
        """Finishes a frame on its way out. The thread calling ``next_frame``."""

    # -- capture thread -----------------------------------------------------------------------
    def _capture_loop(self) -> None:
        stats, stop = self.stats, self.done
        period = 1.0 / self.pace_fps if self.pace_fps else 0.0
        next_time = 0.0  # when the next frame is due (paced sources), set by the first
        index = 0
        try:
            # A camera is read from the start (its frames are wanted as they come); a file or
            # photo waits for the model, so its first frames are not queued for long.
            while self.waits_for_model and not self.ready.wait(POLL):
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
                stats.captured += 1
                stats.capture_fps.tick(now)
                frame = TimedFrame(index, image, now, self.source.position)
                if not self._hand_off(frame):
                    return
                if index == 0:  # the playback starts with the first frame out
                    next_time = frame.captured + period
                index += 1
        except BaseException as exc:  # handed to the caller, never lost
            # The input is gone, not the dream: end the stream so every frame already
            # captured is still delivered.
            self._fail(exc, stop=False)
        finally:
            self._end_capture()

    # -- dream thread ---------------------------------------------------------------------------
    def _dream_loop(self) -> None:
        stop = self.done
        try:
            self.dreamer = self._make_dreamer()
            self._built(self.dreamer)
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
                if not self._take(item):
                    return
        except BaseException as exc:  # handed to the caller, never lost
            self._fail(exc)
        finally:
            self._end_dream()

    def _apply_controls(self, clock: float) -> Dreamer:
        """The dreamer, with the keys applied before the frame of time ``clock``."""
        dreamer = self.dreamer
        assert dreamer is not None
        apply_controls(self.controls, dreamer, self.compositor, clock)
        return dreamer

    def _kept_on_faces(self) -> float:
        """The share of the dream kept on faces now (1: no protection)."""
        return 1.0 if self.controls is None else self.controls.kept_on_faces

    def _find_faces(self, keyframe: Keyframe, frame: np.ndarray) -> Keyframe:
        """``keyframe`` with its faces, while protection is on. Dream thread."""
        if self.faces is None or not protecting(self._kept_on_faces()):
            return keyframe
        started = time.perf_counter()
        faces = self.faces.update(frame, keyframe.gray, keyframe.captured)
        self.stats.face_seconds += time.perf_counter() - started
        return replace(keyframe, faces=faces)

    def _dream(self, item: TimedFrame, clock: float) -> None:
        """Dreams ``item`` into a new keyframe and publishes it. Dream thread."""
        dreamer = self.dreamer
        assert dreamer is not None
        stats = self.stats
        started = time.perf_counter()
        try:
            keyframe = dreamer.keyframe(item.image, index=item.index, captured=clock)
        except MemoryError:  # host memory: the accelerator of a CPU run
            size = dreamer.sizer.size_for(item.image.shape[1], item.image.shape[0])
            raise AcceleratorMemoryError(size) from None
        dreamt = time.perf_counter() - started
        keyframe = self._find_faces(keyframe, item.image)
        self.compositor.publish(keyframe)
        self._keyframed.set()
        stats.dream_seconds.append(dreamt)
        stats.dream_seconds_total += dreamt
        stats.dream_size = (keyframe.gray.shape[1], keyframe.gray.shape[0])
        stats.dreamed += 1
        stats.dream_fps.tick()

    # -- the compositor (the thread each pipeline names) -----------------------------------------
    def _composite(self, item: TimedFrame, clock: float) -> tuple[np.ndarray, bool]:
        """``item`` with the newest dream on it; counts the faces protected and their cost."""
        compositor = self.compositor
        out = compositor.composite(
            item.image, clock, item.index, face_strength=self._kept_on_faces()
        )
        self.stats.faces = compositor.last_faces
        self.stats.face_mask_seconds += compositor.last_face_ms / 1000.0
        return out
