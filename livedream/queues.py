"""Bounded queues between the pipeline's threads that never deadlock on shutdown.

A put either waits for room while the pipeline runs (``put_waiting``, nothing lost) or pushes
out what waits (``put_newest``, counted); ``None`` marks the end of a stream and is never
pushed out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from livedream.stats import TimedFrame

POLL = 0.05  # seconds a blocked put waits before looking at its stop event again

Queue = queue.Queue[TimedFrame | None]


def put_waiting(q: Queue, item: TimedFrame | None, *, stop: threading.Event) -> bool:
    """Puts ``item``, waiting for room; returns False when the pipeline stopped first."""
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


def put_newest(q: Queue, item: TimedFrame | None, count: Callable[[], None]) -> None:
    """Puts ``item``, pushing out what waits (``count()`` for each) instead of waiting.

    The end marker (``None``) is never pushed out: it is always the last thing put.
    """
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                old = q.get_nowait()
            except queue.Empty:
                continue
            if old is None:  # never drop the end marker
                q.put_nowait(old)
                return
            count()
