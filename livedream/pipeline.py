"""Threads and queues: capture -> dream -> the caller's sinks.

The capture thread reads a ``Source`` into a bounded queue; the dream thread builds the model
(so the main thread stays free for the window, the terminal and Ctrl-C), dreams each frame and
puts it on the output queue; the caller (the main thread, which owns the preview window) takes
dreamed frames with ``next_frame()`` and hands them to its sinks.

Live sources drop old frames (newest wins, counted) so lag never builds up; a file rendered to a
file blocks instead, so no frame is lost. ``None`` marks the end of a stream on every queue.

Failures: a source that fails mid-run (a webcam unplugged) ends the stream like its end would,
so every frame already captured is still dreamed and delivered; the error waits in ``error``
for the caller. A dream that fails stops everything at once. Neither logs a traceback: the
caller reports ``error`` in one line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.errors import AcceleratorMemoryError
from livedream.sources import Source

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 1.0  # seconds all threads together get to stop: shutdown stays under 2 s
POLL = 0.05  # seconds a blocked thread waits before looking at its stop event again
IDLE_POLL = 0.02  # seconds the consumer waits for a frame before calling on_idle


@dataclass
class TimedFrame:
    """A frame on its way through the pipeline.

    Attributes:
        index: 0-based number of the captured frame.
        image: (H, W, 3) uint8 BGR.
        captured: ``time.perf_counter()`` when it was captured; latency is measured from it.
        pts: its time in the input file, in seconds (None for a camera).
    """

    index: int
    image: np.ndarray
    captured: float
    pts: float | None = None


class RateMeter:
    """Events per second over the last ``window`` seconds. Thread-safe."""

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._times.append(now)
            while self._times and now - self._times[0] > self._window:
                self._times.popleft()

    def rate(self) -> float:
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass
class Stats:
    """What the terminal table and the heads-up overlay show.

    Each counter has one writing thread, except ``dropped`` (capture and dream threads both
    drop), which is counted through ``count_drop()`` under a lock.
    """

    captured: int = 0
    dreamed: int = 0
    output: int = 0
    dropped: int = 0  # frames dropped so that lag does not build up (live sources only)
    capture_fps: RateMeter = field(default_factory=RateMeter)
    dream_fps: RateMeter = field(default_factory=RateMeter)
    output_fps: RateMeter = field(default_factory=RateMeter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=600))  # seconds
    dream_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    _drop_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_drop(self) -> None:
        """Counts one dropped frame; safe from any thread."""
        with self._drop_lock:
            self.dropped += 1

    def latency_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) of recent capture-to-sink latencies, in ms."""
        values = list(self.latencies)
        return float(np.quantile(values, q) * 1000.0) if values else 0.0


def _put(
    q: queue.Queue[TimedFrame | None],
    item: TimedFrame | None,
    *,
    newest_wins: bool,
    stop: threading.Event,
    stats: Stats,
) -> bool:
    """Puts ``item``; returns False when the pipeline stopped first.

    newest_wins: drop what waits in the queue (counting it) instead of waiting for room. The
    end marker (``None``) always waits for room instead: it must not push out the last frame.
    """
    if newest_wins and item is not None:
        while True:
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                try:
                    old = q.get_nowait()
                except queue.Empty:
                    continue
                if old is not None:
                    stats.count_drop()
                else:  # never drop the end marker: it was the last thing put
                    q.put_nowait(old)
                    return True
    try:  # a frame finished as the pipeline stops still goes in when there is room
        q.put_nowait(item)
        return True
    except queue.Full:
        pass
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL)
            return True
        except queue.Full:
            continue
    return False


class Pipeline:
    """Capture and dream threads around a source. A context manager; ``stop()`` is idempotent.

    Args:
        source: where frames come from; closed by ``stop()``.
        make_dreamer: builds the ``Dreamer`` in the dream thread (model load and compile).
        live: newest frame wins (drops, no lag); False: block, lose nothing.
        pace_fps: read the source at this rate (a file or still shown live); None: as it comes.
        controls: the live settings (keys): mirror is applied as frames enter, the rest by
            the dream thread. None: the dreamer keeps its config's settings.
        max_frames: stop capturing after this many frames.
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
    ) -> None:
        self.source = source
        self.live = live
        self.pace_fps = pace_fps
        self.controls = controls
        self.max_frames = max_frames
        self.stats = stats if stats is not None else Stats()
        self.dreamer: Dreamer | None = None
        self.error: BaseException | None = None  # the first failure of a worker thread
        self.on_idle: Callable[[], None] | None = None  # called while __iter__ waits
        self.ready = threading.Event()  # set once the model is built (or failed to build)
        self.done = threading.Event()  # set by stop(): every thread winds down
        self._make_dreamer = make_dreamer
        self._captured: queue.Queue[TimedFrame | None] = queue.Queue(maxsize=1 if live else 4)
        self._dreamed: queue.Queue[TimedFrame | None] = queue.Queue(maxsize=1 if live else 4)
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
        Frames already dreamed stay queued: ``next_frame(0)`` still hands them out.
        """
        self.done.set()
        self._drain(self._captured)  # not yet dreamed: dropped
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
    def _drain(q: queue.Queue[TimedFrame | None]) -> None:
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
        """The next dreamed frame, or None when none came within ``timeout``.

        Check ``ended`` after a None: it tells the end of the stream from a slow dream.
        """
        if self._ended:
            return None
        try:
            item = self._dreamed.get(timeout=timeout)
        except queue.Empty:
            if self.done.is_set() and not any(t.is_alive() for t in self._threads):
                self._ended = True
            return None
        if item is None:
            self._ended = True
            return None
        now = time.perf_counter()
        self.stats.output += 1
        self.stats.output_fps.tick(now)
        self.stats.latencies.append(now - item.captured)
        return item

    def __iter__(self) -> Iterator[TimedFrame]:
        """Dreamed frames in order until the stream ends, fails or is stopped; starts the threads.

        While it waits for the next frame it calls ``on_idle`` (a preview window stays
        responsive: keys during a slow dream). After a stop (``done``), frames already dreamed
        stay queued for ``next_frame(0)``.
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
        """True once the last dreamed frame was taken (end of input, error or stop)."""
        return self._ended

    # -- worker threads ----------------------------------------------------------------------
    def _capture_loop(self) -> None:
        stats, stop = self.stats, self.done
        period = 1.0 / self.pace_fps if self.pace_fps else 0.0
        next_time = time.perf_counter()
        index = 0
        try:
            # A live source is read from the start (a camera's frames are wanted as they come);
            # a file waits for the model so its first frames are not dropped or queued for long.
            while not self.live and not self.ready.wait(POLL):
                if stop.is_set():
                    return
            while not stop.is_set():
                if self.max_frames is not None and index >= self.max_frames:
                    break
                if period:
                    delay = next_time - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        break
                    next_time = max(next_time + period, time.perf_counter() - period)
                image = self.source.read()
                if image is None:
                    break
                if self.controls is not None and self.controls.mirror:
                    image = np.ascontiguousarray(image[:, ::-1])
                now = time.perf_counter()
                stats.captured += 1
                stats.capture_fps.tick(now)
                if not _put(
                    self._captured,
                    TimedFrame(index, image, now, self.source.position),
                    newest_wins=self.live,
                    stop=stop,
                    stats=stats,
                ):
                    return
                index += 1
        except BaseException as exc:  # handed to the caller, never lost
            # The input is gone, not the dream: end the stream so every frame already
            # captured is still dreamed and delivered.
            self._fail(exc, stop=False)
        finally:
            _put(self._captured, None, newest_wins=self.live, stop=stop, stats=stats)

    def _dream_loop(self) -> None:
        stats, stop = self.stats, self.done
        try:
            self.dreamer = self._make_dreamer()
        except BaseException as exc:  # handed to the caller, never lost
            self._fail(exc)
            _put(self._dreamed, None, newest_wins=self.live, stop=stop, stats=stats)
            return
        finally:
            self.ready.set()
        dreamer = self.dreamer
        try:
            while True:
                try:
                    item = self._captured.get(timeout=POLL)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if item is None or stop.is_set():
                    break
                if self.controls is not None:
                    dreamer.apply(self.controls)
                started = time.perf_counter()
                try:
                    item.image = dreamer(item.image)
                except MemoryError:  # host memory: the accelerator of a CPU run
                    w, h = dreamer.config.size_for(item.image.shape[1], item.image.shape[0])
                    raise AcceleratorMemoryError(
                        f"out of memory dreaming at {w}x{h}: "
                        "try a smaller --dream-size (e.g. 320x240) or fewer --layers"
                    ) from None
                stats.dream_seconds.append(time.perf_counter() - started)
                stats.dreamed += 1
                stats.dream_fps.tick()
                if not _put(self._dreamed, item, newest_wins=self.live, stop=stop, stats=stats):
                    return
        except BaseException as exc:  # handed to the caller, never lost
            self._fail(exc)
        finally:
            _put(self._dreamed, None, newest_wins=self.live, stop=stop, stats=stats)
