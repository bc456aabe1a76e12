"""Dreaming one chunk, wherever it runs: in this process (``LocalRunner``) or in a Ray worker
(``ChunkWorker``, wrapped by ``ray_runner``). Both return the chunk as an encoded segment.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from livedream.config import DeepConfig
from livedream.deep.chunks import Chunk, encode_segment
from livedream.resolve import Look, ResolvedDream

if TYPE_CHECKING:  # TensorFlow: imported where the dream runs, never by a Ray driver
    from livedream.deep.octaves import FrameDreamer

log = logging.getLogger(__name__)

#: (chunk, frames) to dream, handed out in order. frames: (n, H, W, 3) uint8 BGR, warm-up first.
Job = tuple[Chunk, np.ndarray]
#: Called with a finished chunk and its encoded segment.
Save = Callable[[Chunk, bytes], None]
#: Called with (chunk number, kept frames of it dreamed so far).
Report = Callable[[int, int], None]


def dream_chunk(
    dreamer: FrameDreamer,
    chunk: Chunk,
    frames: np.ndarray,
    fps: float,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> bytes | None:
    """Dreams ``chunk`` from its warm-up on; as a segment its frames from ``fade_start`` (the
    cross-fade's, then the kept ones), None if stopped. ``on_frame``: kept frames done."""
    dreamer.reset()
    kept: list[np.ndarray] = []
    for offset, frame in enumerate(frames):
        index = chunk.warm_start + offset
        out = dreamer(frame, index, should_stop=should_stop)
        if should_stop is not None and should_stop():
            return None
        if index >= chunk.fade_start:
            kept.append(out)
            if on_frame is not None and index >= chunk.start:
                on_frame(index + 1 - chunk.start)
    return encode_segment(kept, fps)


class LocalRunner:
    """Chunks dreamed one after another in this process (no Ray)."""

    def __init__(self, dream: ResolvedDream, deep: DeepConfig) -> None:
        from livedream.deep.octaves import FrameDreamer

        self.dream = dream
        self.deep = deep
        self._dreamer = FrameDreamer(dream, deep)  # the model loads here

    def run(
        self, jobs: Iterable[Job], *, fps: float, save: Save, report: Report, stop: threading.Event
    ) -> None:
        """Dreams every job and saves it, until done or ``stop`` (within a compiled call)."""
        for chunk, frames in jobs:
            if stop.is_set():
                return
            number = chunk.number
            data = dream_chunk(
                self._dreamer,
                chunk,
                frames,
                fps,
                should_stop=stop.is_set,
                on_frame=lambda n, number=number: report(number, n),  # type: ignore[misc]
            )
            if data is None:
                return
            save(chunk, data)


def limit_tensorflow_threads(threads: int) -> None:
    """Gives this process's TensorFlow ``threads`` threads; before its first operation."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))


class ChunkWorker:
    """One Ray worker: builds the dream once, then dreams chunk after chunk.

    The dream is resolved here, for this worker's own device (a node with a GPU dreams there).

    Args:
        look: the checked look (its guide already decoded: no file is read here).
        deep: the octaves.
        threads: TensorFlow's threads in this worker (the node's cores shared out).
    """

    def __init__(self, look: Look, deep: DeepConfig, threads: int) -> None:
        from livedream.runtime import import_tensorflow, quiet_libraries

        quiet_libraries(False)
        import_tensorflow(False)
        limit_tensorflow_threads(threads)
        from livedream.deep.octaves import FrameDreamer
        from livedream.device import detect_device
        from livedream.resolve import resolve_dream

        self.dreamer = FrameDreamer(resolve_dream(look, detect_device()), deep)

    def pid(self) -> int:
        """This worker's process id (logged, and for the tests)."""
        return os.getpid()

    def dream(self, chunk: Chunk, frames: np.ndarray, fps: float, progress: object) -> bytes:
        """``chunk`` dreamed; as a segment, its frames from ``fade_start``. ``progress``: a
        ``Progress`` actor told how many kept frames are done."""

        def on_frame(done: int) -> None:
            progress.set.remote(chunk.number, done)  # type: ignore[attr-defined]

        data = dream_chunk(self.dreamer, chunk, frames, fps, on_frame=on_frame)
        assert data is not None  # no stop request inside a worker: the driver kills it
        return data


class Progress:
    """Kept frames done per chunk, across workers (a Ray actor); a retried chunk counts anew."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def set(self, chunk: int, frames: int) -> None:
        self.done[chunk] = frames

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)
