"""The finished chunks assembled into the output: one file with the input's sound and its
timestamps, written by the same video sink as every render (faststart where the container has
an index)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from livedream.deep.chunks import Chunk, decode_segment
from livedream.deep.store import ChunkFolderError, ChunkStore
from livedream.sinks import VideoFileSink


def assemble(
    store: ChunkStore,
    chunks: Sequence[Chunk],
    times: Sequence[float],
    output: Path,
    inputs: Iterable[np.ndarray],
    *,
    width: int,
    height: int,
    fps: float,
    quality: int,
    overwrite: bool,
    audio_from: Path | None,
) -> int:
    """Writes every chunk's frames in order to ``output``, frame i at ``times[i]`` seconds,
    cross-faded from one chunk to the next over the next one's warm-up. ``inputs``: the input's
    frames in order (what each cross-faded frame was dreamed from).

    Returns:
        The frames written.

    Raises:
        ChunkFolderError: a chunk holds another number of frames than planned (damaged).
        OutputWriteError: the output could not be written.
    """
    written = 0
    held: list[np.ndarray] = []  # the chunk before's last frames, for this chunk's cross-fade
    source = enumerate(inputs)
    sink = VideoFileSink(
        output,
        width=width,
        height=height,
        fps=fps,
        overwrite=overwrite,
        quality=quality,
        audio_from=audio_from,
    )
    try:
        for number, chunk in enumerate(chunks):
            hold = chunks[number + 1].fade if number + 1 < len(chunks) else 0
            expected = chunk.fade + chunk.frames
            before, held = held, []
            count = 0
            for frame in decode_segment(store.load(chunk.number)):
                if count == expected:
                    raise ChunkFolderError(
                        f"{store.chunk_path(chunk.number)} holds more than the {expected} frames "
                        "expected: delete it and run the same command again to redo it"
                    )
                index = chunk.fade_start + count
                count += 1
                if index < chunk.start:  # the chunk before's frame, faded into this one's
                    weight = (index - chunk.fade_start + 1) / (chunk.fade + 1)
                    frame_in = next((f for i, f in source if i == index), None)
                    if frame_in is None:
                        raise ChunkFolderError(
                            f"the input gave fewer frames than when its chunks were planned (no "
                            f"frame {index}): was it changed? run the same command again"
                        )
                    frame = cross_fade(before[index - chunk.fade_start], frame, frame_in, weight)
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
    except BaseException:
        sink.discard()  # a cut-short file never takes the output's name: the chunks stay
        raise
    sink.close()
    return written


# Two chunks' dreams of a frame are alike in strength but not in pattern: mixed half and half,
# their residuals partly cancel (by about 1/sqrt(2) when unrelated). The mix is scaled back to
# the strength the two have, at most this much (where they cancel out, nothing is amplified).
MAX_FADE_GAIN = 2.0


def cross_fade(
    before: np.ndarray, after: np.ndarray, frame_in: np.ndarray, weight: float
) -> np.ndarray:
    """``after`` weighted ``weight`` (0..1) over ``before``, both dreams of ``frame_in``; the
    dream mixed keeps the two dreams' strength (mean |out - in|, weighted alike). (H, W, 3)
    uint8 BGR each."""
    base = frame_in.astype(np.float32)
    first, second = before.astype(np.float32) - base, after.astype(np.float32) - base
    mixed = (1.0 - weight) * first + weight * second
    wanted = (1.0 - weight) * float(np.abs(first).mean()) + weight * float(np.abs(second).mean())
    got = float(np.abs(mixed).mean())
    gain = min(MAX_FADE_GAIN, wanted / got) if got > 0 else 1.0
    return np.clip(base + gain * mixed + 0.5, 0, 255).astype(np.uint8)
