"""The machine a benchmark runs on: who it is, how loaded, what this process used of it.

Also the clip helpers every section reads frames with. Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
from rich.console import Console

from livedream.media import Frame
from livedream.sources import VideoFileSource

if TYPE_CHECKING:
    from livedream.dream import Device


# -- who the machine is --------------------------------------------------------------------------
@dataclass
class MachineInfo:
    """CPU model, cores, bf16 instructions, accelerator, library versions and the load."""

    cpu: str
    cores: int
    cpu_bf16: list[str]  # which of amx_bf16, amx_tile, avx512_bf16 the CPU has
    accelerator: str
    device: str  # "cpu" or "gpu"
    python: str
    tensorflow: str
    opencv: str
    load_avg_start: list[float]  # 1, 5 and 15 minute load averages
    load_avg_end: list[float] = field(default_factory=list)  # set when the run ends


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded for the JSON."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(device: Device) -> MachineInfo:
    """Who the machine is, with the load as the run starts."""
    import tensorflow as tf

    from livedream.dream import cpu_info

    name, flags = cpu_info()
    if name == "unknown CPU":
        name = platform.processor() or name
    return MachineInfo(
        cpu=name,
        cores=os.cpu_count() or 1,
        cpu_bf16=sorted({"amx_bf16", "amx_tile", "avx512_bf16"} & flags),
        accelerator=device.name if device.kind == "gpu" else "none (CPU)",
        device=device.kind,
        python=platform.python_version(),
        tensorflow=tf.__version__,
        opencv=cv2.__version__,
        load_avg_start=load_avg(),
    )


# -- what this process used ----------------------------------------------------------------------
def cpu_seconds() -> float:
    """User plus system CPU seconds this process used so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform.startswith("linux") else kb / 1024.0**2


@dataclass
class Section:
    """One section of the run: when it started, how long it took, how loaded the machine was."""

    name: str
    start_s: float  # seconds since the run started
    load_avg_1m: float  # as it started
    seconds: float = 0.0  # set when the next section starts
    # Share of the machine's cores this process got: ~1 when alone (TensorFlow keeps every
    # core busy), lower when other jobs ran beside it. Set when the next section starts.
    cpu_share: float = 0.0


class SectionClock:
    """Times the run's sections one after another and says each on ``log`` as it starts."""

    def __init__(self, log: Console) -> None:
        self.sections: list[Section] = []
        self._log = log
        self._started = time.perf_counter()
        self._cpu = cpu_seconds()  # as the current section started

    @property
    def elapsed(self) -> float:
        """Seconds since the clock was made (the run started)."""
        return time.perf_counter() - self._started

    def __call__(self, name: str, text: str) -> None:
        """Starts the section ``name`` ("" ends the last one) and says ``text`` on the log."""
        now, cpu = self.elapsed, cpu_seconds()
        if self.sections:
            last = self.sections[-1]
            last.seconds = now - last.start_s
            last.cpu_share = (cpu - self._cpu) / (last.seconds * (os.cpu_count() or 1))
        if name:
            self.sections.append(Section(name, now, os.getloadavg()[0]))
            self._cpu = cpu
        self._log.print(f"[dim]{now:6.1f} s[/]  {text}", highlight=False)


# -- clip frames ---------------------------------------------------------------------------------
def read_frames(clip: Path, count: int) -> tuple[list[Frame], float]:
    """The first ``count`` frames of ``clip`` (fewer if it is shorter) and ms per decode."""
    frames: list[Frame] = []
    with VideoFileSource(clip) as source:
        started = time.perf_counter()
        while len(frames) < count and (frame := source.read()) is not None:
            frames.append(frame)
        elapsed = time.perf_counter() - started
    return frames, 1000.0 * elapsed / max(1, len(frames))
