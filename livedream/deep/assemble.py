"""The finished chunks assembled into the output: one file with the input's sound and its
timestamps, written by the same video sink as every render (faststart where the container has
an index)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from livedream.deep.chunks import Chunk, decode_segment
from livedream.deep.store import ChunkFolderError, ChunkStore
from livedream.sinks import VideoFileSink


def assemble(
    store: ChunkStore,
    chunks: Sequence[Chunk],
    times: Sequence[float],
    output: Path,
    *,
    width: int,
    height: int,
    fps: float,
    quality: int,
    overwrite: bool,
    audio_from: Path | None,
) -> int:
    """Writes every chunk's frames in order to ``output``, frame i at ``times[i]`` seconds.

    Returns:
        The frames written.

    Raises:
        ChunkFolderError: a chunk holds another number of frames than planned (damaged).
        OutputWriteError: the output could not be written.
    """
    written = 0
    held: list[np.ndarray] = []  # the chunk before's last frames, for this chunk's cross-fade
    with VideoFileSink(
        output,
        width=width,
        height=height,
        fps=fps,
        overwrite=overwrite,
        quality=quality,
        audio_from=audio_from,
    ) as sink:
        for number, chunk in enumerate(chunks):
            hold = chunks[number + 1].fade if number + 1 < len(chunks) else 0
            expected = chunk.fade + chunk.frames
            before, held = held, []
            count = 0
            for frame in decode_segment(store.load(chunk.number)):
                index = chunk.fade_start + count
                count += 1
                if count > expected:
                    break
                if index < chunk.start:  # the chunk before's frame, faded into this one's
                    weight = (index - chunk.fade_start + 1) / (chunk.fade + 1)
                    frame = cross_fade(before[index - chunk.fade_start], frame, weight)
                elif index >= chunk.end - hold:  # written with the next chunk's cross-fade
                    held.append(frame)
                    continue
                sink.write(frame, pts=times[index])
            if count != expected:
                raise ChunkFolderError(
                    f"{store.chunk_path(chunk.number)} holds {count} frames, expected "
                    f"{expected}: delete it and run the same command again to redo it"
                )
            written += chunk.frames
    return written


def cross_fade(before: np.ndarray, after: np.ndarray, weight: float) -> np.ndarray:
    """``after`` weighted ``weight`` (0..1) over ``before``: (H, W, 3) uint8 BGR."""
    return cv2.addWeighted(before, 1.0 - weight, after, weight, 0.0)  # type: ignore[no-any-return]
