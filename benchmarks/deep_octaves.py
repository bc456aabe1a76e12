"""Octaves on video, for the deep-render section (``python benchmarks/fps.py --deep``).

The first frames of the section's clip are dreamed by four ``FrameDreamer``s side by side,
frame by frame (so a change in machine load hits them alike): 1 octave of S steps, 3 octaves
of S/3 (the same steps a frame), 3 octaves of S/2 (about the same seconds a frame: an octave's
step costs about its area, 1 + 1/1.3^2 + 1/1.3^4 = 1.94 full-size steps for three), and the
3 x S/3 one with nothing carried between frames (each frame dreamed fresh), for its flicker
ratio. Strength is mean |out - in| of the full-size output; flicker is ``temporal.flicker``;
seconds a frame are medians.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from livedream.config import DeepConfig, DreamConfig
from livedream.temporal import flicker

FRAMES = 16  # the clip's first frames
STEPS = 12  # S: the steps a frame of the single scale
SHORT_SIDE = 96


def octaves_check(clip: Path, size: tuple[int, int]) -> dict[str, float]:
    """Strength, flicker and seconds a frame of octaves 3 against 1 on ``clip``'s first frames,
    dreamed at ``size`` (w, h; ``SHORT_SIDE`` on its short side)."""
    from livedream.deep.octaves import FrameDreamer
    from livedream.deep.render import read_frames
    from livedream.resolve import resolve_here
    from livedream.step import build_step

    frames = list(read_frames(clip, FRAMES))
    dream = resolve_here(
        DreamConfig(dream_size=size, steps=STEPS, precision="float32", compile="graph")
    )
    step = build_step(dream)
    configs = {  # name: (octaves, steps per octave, carried)
        "1x12": (1, STEPS, True),
        "3x4": (3, STEPS // 3, True),
        "3x6": (3, STEPS // 2, True),
        "3x4_fresh": (3, STEPS // 3, False),
    }
    dreamers = {
        name: FrameDreamer(dream, DeepConfig(octaves=o, octave_steps=s), step=step)
        for name, (o, s, _) in configs.items()
    }
    for dreamer in dreamers.values():  # traces each octave size once, off the clock
        dreamer(frames[0], 0)
        dreamer.reset()
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in configs}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for index, frame in enumerate(frames):
        for name, (_, _, carried) in configs.items():
            if not carried:
                dreamers[name].reset()
            started = time.perf_counter()
            outputs[name].append(dreamers[name](frame, index))
            seconds[name].append(time.perf_counter() - started)
    result: dict[str, float] = {"octave_frames": float(FRAMES), "octave_steps_1": float(STEPS)}
    for name in configs:
        measured = flicker(frames, outputs[name], width=size[0])
        result[f"octaves_{name}_strength"] = measured["strength"]
        result[f"octaves_{name}_flicker"] = measured["flicker"]
        result[f"octaves_{name}_seconds"] = float(np.median(seconds[name]))
    one = result["octaves_1x12_strength"]
    result["octaves_equal_steps_strength_ratio"] = result["octaves_3x4_strength"] / one
    result["octaves_equal_time_strength_ratio"] = result["octaves_3x6_strength"] / one
    result["octaves_flicker_ratio_vs_fresh"] = (
        result["octaves_3x4_flicker"] / result["octaves_3x4_fresh_flicker"]
    )
    return result


def report(result: dict[str, float]) -> None:
    """The octave figures, a line each."""
    one = result["octaves_1x12_seconds"]
    for name, what in (
        ("1x12", "1 octave x 12 steps"),
        ("3x4", "3 octaves x 4 (same steps)"),
        ("3x6", "3 octaves x 6 (about the same time)"),
    ):
        print(
            f"{what}: strength {result[f'octaves_{name}_strength']:.2f}, "
            f"{result[f'octaves_{name}_seconds']:.2f} s a frame "
            f"(x{result[f'octaves_{name}_seconds'] / one:.2f})"
        )
    print(
        f"3 octaves vs 1: strength x{result['octaves_equal_steps_strength_ratio']:.2f} at the "
        f"same steps, x{result['octaves_equal_time_strength_ratio']:.2f} at about the same time; "
        f"flicker against fresh frames x{result['octaves_flicker_ratio_vs_fresh']:.2f} "
        "(want <= 0.6)"
    )
