"""The deep-render section of the benchmark: ``python benchmarks/fps.py --deep [--quick]``.

The clip: ``bigbuckbunny.mp4`` of the shared media (132 frames of one shot, no cut), chunked in two
so its one seam sits in the middle with frames 30 or more from it on both sides. Without it, the
longest shot of the benchmark clip played forth and back and forth (one long shot of real footage:
its shots are 50-60 frames, too short for frames 30 from any seam or cut). It is rendered deep and
chunked twice, with 1 worker (in this process's TensorFlow) and with 2 (Ray, embedded), each a real
``livedream`` process timed from start to end, and checks the seams of the 2-worker render: flicker
and strength over the 5 frames on each side of every chunk seam against frames 30 or more from any
seam or cut (the clip's start counts as a cut: the dream starts there). Then octaves on the clip's
first frames: 3 against 1 at the same steps and at about the same time (``deep_octaves.py``).

    python benchmarks/fps.py --deep              # 132 frames, chunks of 66 (or 180 of 60)
    python benchmarks/fps.py --deep --quick      # the same (or 120 of 60)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deep_octaves import SHORT_SIDE as OCTAVES_SHORT_SIDE
from deep_octaves import octaves_check
from deep_octaves import report as report_octaves
from livedream.args import HelpFormatter, OneLineParser, positive_int
from livedream.config import DeepConfig
from livedream.deep.chunks import plan_chunks
from livedream.deep.render import find_shots, read_frames
from livedream.sources import VideoFileSource
from livedream.temporal import flicker
from settings import BUNDLED_CLIP, SHARED_CLIP

SEAM_SIDE = 5  # frames each side of a seam
FAR = 30  # frames from any seam or cut that count as away from seams
WARMUP = DeepConfig.warmup  # frames a chunk dreams before its first kept one
# Real footage of one shot (no cut), long enough for frames 30 from a seam on both sides of
# one seam in its middle. A shorter shot played forth and back put the seams on the turns,
# where the dream meets the pictures it has just dreamed and comes out stronger.
ONE_SHOT_CLIP = SHARED_CLIP.with_name("bigbuckbunny.mp4")
ONE_SHOT_FRAMES = 132


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="benchmarks/fps.py --deep",
        description="Deep-render fps with 1 and 2 workers, and the seam check.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--deep", action="store_true", help="(this section)")
    parser.add_argument(
        "--quick", action="store_true", help="without bigbuckbunny.mp4: 120 frames, not 180"
    )
    parser.add_argument("--steps", type=positive_int, default=4, help="dream steps per frame")
    parser.add_argument("--octaves", type=positive_int, default=2, help="octaves per frame")
    parser.add_argument("--short-side", type=positive_int, default=136, help="dream short side")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    return parser.parse_args(argv)


def dream_size(clip: Path, short_side: int) -> tuple[int, int]:
    """The clip's aspect at ``short_side``, even sizes."""
    from livedream.config import DreamSize

    with VideoFileSource(clip) as source:
        return DreamSize(short_side=short_side).size_for(source.width, source.height)


def render(clip: Path, out: Path, frames: int, chunk: int, workers: int, args: Any) -> float:
    """Seconds a real ``livedream`` deep render took, start to end."""
    w, h = dream_size(clip, args.short_side)
    short = ["--dream-size", f"{w}x{h}"]
    command = [sys.executable, "-m", "livedream", "-i", str(clip), "-o", str(out)]
    command += ["--max-frames", str(frames), "--chunk-frames", str(chunk), "--overwrite"]
    command += ["--quality", "0"]  # lossless: H.264 at its default quality hides flicker
    command += ["--steps", str(args.steps), "--octaves", str(args.octaves), *short]
    command += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the render with {workers} workers failed: {done.stderr[-500:]}")
    return seconds


def seam_check(
    clip: Path, outs: dict[str, Path], frames: int, chunk: int, size: tuple[int, int]
) -> dict[str, float]:
    """Flicker and strength near the seams against far from seams and cuts, in the chunked
    render and, over the same frames, in one render without seams (what the footage itself
    does there)."""
    with VideoFileSource(clip) as source:
        cuts, _ = find_shots(source, size, frames)
    chunks = plan_chunks(frames, cuts, chunk_frames=chunk, warmup=WARMUP)
    seams = [c.start for c in chunks if c.start > 0 and c.start not in cuts]
    starts = [0, *cuts]
    inputs = list(read_frames(clip, frames))
    near = [(s - SEAM_SIDE, s + SEAM_SIDE) for s in seams]
    far_frames = [
        i
        for i in range(frames)
        if all(abs(i - s) >= FAR for s in seams) and all(i - c >= FAR for c in starts if c <= i)
    ]
    runs: list[tuple[int, int]] = []  # runs of consecutive far frames, measured like the seams
    for i in far_frames:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    result = {"seams": float(len(seams))}
    for name, out in outs.items():
        outputs = list(read_frames(out, frames))

        def measure(
            windows: list[tuple[int, int]], outputs: list[np.ndarray] = outputs
        ) -> dict[str, float]:
            parts = [flicker(inputs[a:b], outputs[a:b]) for a, b in windows if b - a >= 2]
            return {k: float(np.mean([p[k] for p in parts])) for k in ("flicker", "strength")}

        at, away = measure(near), measure(runs)
        fading = measure([(max(0, s - WARMUP), s) for s in seams])  # the cross-fades
        result[f"{name}_fade_strength_ratio"] = fading["strength"] / away["strength"]
        result[f"{name}_seam_flicker"] = at["flicker"]
        result[f"{name}_far_flicker"] = away["flicker"]
        result[f"{name}_flicker_ratio"] = at["flicker"] / away["flicker"]
        result[f"{name}_seam_strength"] = at["strength"]
        result[f"{name}_far_strength"] = away["strength"]
        result[f"{name}_strength_ratio"] = at["strength"] / away["strength"]
    return result


def long_shot(source_clip: Path, path: Path, frames: int, size: tuple[int, int]) -> Path:
    """The longest shot of ``source_clip`` played forth and back to ``frames`` frames."""
    import av

    with VideoFileSource(source_clip) as source:
        cuts, times = find_shots(source, size, None)
    total = len(times)
    all_frames = list(read_frames(source_clip, total))
    bounds = list(zip([0, *cuts], [*cuts, total], strict=True))
    start, end = max(bounds, key=lambda b: b[1] - b[0])
    shot = all_frames[start:end]
    played: list[np.ndarray] = []
    while len(played) < frames:
        played += shot if len(played) // len(shot) % 2 == 0 else shot[::-1][1:-1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width = shot[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in played[:frames]:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode(None))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if ONE_SHOT_CLIP.is_file():  # real footage, one shot: a seam in its middle
            clip, frames, chunk = ONE_SHOT_CLIP, ONE_SHOT_FRAMES, ONE_SHOT_FRAMES // 2
        else:
            source_clip = SHARED_CLIP if SHARED_CLIP.is_file() else BUNDLED_CLIP
            frames, chunk = (120, 60) if args.quick else (180, 60)
            size = dream_size(source_clip, args.short_side)
            clip = long_shot(source_clip, Path(folder) / "long_shot.mp4", frames, size)
        print(f"the clip: {clip.name}, {frames} frames, chunks of {chunk}")
        size = dream_size(clip, args.short_side)
        result: dict[str, float] = {"frames": float(frames), "chunk_frames": float(chunk)}
        for workers in (1, 2):
            out = Path(folder) / f"deep{workers}.mp4"
            seconds = render(clip, out, frames, chunk, workers, args)
            result[f"fps_{workers}_workers"] = frames / seconds
            result[f"seconds_{workers}_workers"] = seconds
            print(
                f"{workers} worker(s): {frames} frames in {seconds:.1f} s, "
                f"{frames / seconds:.2f} fps (start-up included)"
            )
        whole = Path(folder) / "whole.mp4"  # one chunk: no seam anywhere
        render(clip, whole, frames, frames, 1, args)
        outs = {"chunked": Path(folder) / "deep2.mp4", "unchunked": whole}
        result.update(seam_check(clip, outs, frames, chunk, size))
        result.update(octaves_check(clip, dream_size(clip, OCTAVES_SHORT_SIDE)))
    for name in outs:
        print(
            f"{name}: seams {result[f'{name}_seam_flicker']:.3f} flicker vs "
            f"{result[f'{name}_far_flicker']:.3f} away (x{result[f'{name}_flicker_ratio']:.2f}, "
            f"want <= 1.25), strength {result[f'{name}_seam_strength']:.2f} vs "
            f"{result[f'{name}_far_strength']:.2f} (x{result[f'{name}_strength_ratio']:.2f}, "
            f"want 0.85-1.15); over the cross-fades (the {WARMUP} frames before each seam) "
            f"strength x{result[f'{name}_fade_strength_ratio']:.2f}"
        )
    report_octaves(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
