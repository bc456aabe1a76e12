"""The finished chunks assembled into the output: one file with the input's sound and its
timestamps, written by the same video sink as every render (faststart where the container has
an index)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
    with VideoFileSink(
        output,
        width=width,
        height=height,
        fps=fps,
        overwrite=overwrite,
        quality=quality,
        audio_from=audio_from,
    ) as sink:
        for chunk in chunks:
            count = 0
            for frame in decode_segment(store.load(chunk.number)):
                if count < chunk.frames:
                    sink.write(frame, pts=times[chunk.start + count])
                count += 1
            if count != chunk.frames:
                raise ChunkFolderError(
                    f"{store.chunk_path(chunk.number)} holds {count} frames, expected "
                    f"{chunk.frames}: delete it and run the same command again to redo it"
                )
            written += count
    return written
