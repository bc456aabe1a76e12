"""A long render cut into chunks: shots by the compositor's own cut test, long shots cut into
chunks of ``--chunk-frames``, each with a warm-up overlap.

A chunk keeps frames ``start`` to ``end`` (exclusive). It dreams from ``warm_start``: the
frames before ``start`` in the same shot (at most ``warmup`` of them), so the carried dream has
settled in strength by its first kept frame. Its patterns still differ from the chunk before's,
which carried a longer history: the warm-up's dream of the frames the chunk before also kept
(from ``fade_start``) is kept too, and the output cross-fades from the one chunk to the other
over them (``assemble``), so no seam shows as a jump. A chunk that starts a shot has no warm-up:
the dream starts afresh at a cut in any render.

Segments: a chunk's frames travel and are kept as FFV1 in Matroska (lossless, about a third
of the raw size), as bytes, so no shared file system is needed between workers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from livedream.compositor import Compositor, Keyframe
from livedream.temporal import to_gray


@dataclass(frozen=True)
class Chunk:
    """One piece of work: frames ``warm_start``..``end`` dreamed, ``start``..``end`` kept, and
    ``fade_start``..``start`` kept to cross-fade from the chunk before."""

    number: int
    start: int
    end: int
    warm_start: int
    fade_start: int

    @property
    def fade(self) -> int:
        """Frames cross-faded from the chunk before (its last ones), 0 at a shot's start."""
        return self.start - self.fade_start

    @property
    def frames(self) -> int:
        """Frames kept."""
        return self.end - self.start

    @property
    def dreamed(self) -> int:
        """Frames dreamed, the warm-up among them."""
        return self.end - self.warm_start


def plan_chunks(total: int, cuts: Sequence[int], *, chunk_frames: int, warmup: int) -> list[Chunk]:
    """The chunks of a ``total``-frame input whose shots start at 0 and at each of ``cuts``."""
    starts = sorted({0, *(c for c in cuts if 0 < c < total)})
    chunks: list[Chunk] = []
    for shot_start, shot_end in zip(starts, [*starts[1:], total], strict=True):
        for start in range(shot_start, shot_end, chunk_frames):
            end = min(shot_end, start + chunk_frames)
            warm_start = max(shot_start, start - warmup)
            fade_start = max(warm_start, start - chunk_frames)  # within the chunk before
            chunks.append(Chunk(len(chunks), start, end, warm_start, fade_start))
    return chunks


class CutFinder:
    """The compositor's scene-cut test between neighbouring frames, at the dream size.

    A frame starts a new shot when too little of it can be followed back to the frame before
    (``compositor.CUT_TRUST``): what makes a render start its dream afresh.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size  # (w, h)
        self._compositor = Compositor()
        self._previous: np.ndarray | None = None
        self._none = np.zeros((size[1], size[0], 3), np.float32)

    def is_cut(self, frame: np.ndarray, index: int) -> bool:
        """Whether frame ``index`` ((H, W, 3) uint8 BGR) starts a new shot; call in order."""
        small = frame
        if (frame.shape[1], frame.shape[0]) != self.size:
            small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        cut = False
        if self._previous is not None:
            # The frame before as a keyframe with nothing dreamed: only the test itself counts.
            previous = Keyframe(self._previous, self._none, float(index - 1), index - 1)
            self._compositor.publish(previous)
            _, followed = self._compositor.composite(small, float(index), index)
            cut = not followed
        self._previous = to_gray(small)
        return cut


def chunk_frames(
    frames: Iterable[np.ndarray], chunks: Sequence[Chunk], wanted: Callable[[Chunk], bool]
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """The ``wanted`` chunks with their frames, (n, H, W, 3) uint8, reading ``frames`` once.

    Only the frames of the chunk being filled are held: memory stays at one chunk's worth.
    """
    pending = [c for c in chunks if wanted(c)]
    held: list[np.ndarray] = []
    held_from = 0  # the frame number of held[0]
    for index, frame in enumerate(frames):
        if not pending:
            return
        if index < pending[0].warm_start:
            continue
        if not held:
            held_from = index
        held.append(frame)
        while pending and index + 1 == pending[0].end:
            chunk = pending.pop(0)
            yield chunk, np.stack(held[chunk.warm_start - held_from :])
            keep_from = pending[0].warm_start if pending else index + 1
            held = held[max(0, keep_from - held_from) :]
            held_from = max(held_from, keep_from)


def encode_segment(frames: Sequence[np.ndarray], fps: float) -> bytes:
    """``frames`` ((H, W, 3) uint8 BGR) as lossless FFV1 in Matroska, in memory."""
    buffer = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            out.mux(stream.encode(picture.reformat(format="bgr0")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def decode_segment(data: bytes) -> Iterator[np.ndarray]:
    """The frames of an ``encode_segment`` result, (H, W, 3) uint8 BGR, exactly as written."""
    with av.open(io.BytesIO(data), "r") as clip:
        for frame in clip.decode(video=0):
            yield frame.to_ndarray(format="bgr24")
