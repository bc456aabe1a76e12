"""The device the dream runs on, and the fastest precision and compile mode for it.

TensorFlow is imported by ``detect_device`` only, so the door (``livedream.resolve``) can
decide the precision for a given ``Device`` without it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache

from livedream.config import COMPILE_MODES, PRECISIONS
from livedream.errors import UsageError


@dataclass(frozen=True)
class Device:
    """What the dream runs on. ``bf16_fast``: the CPU has AMX or AVX-512 BF16 instructions."""

    kind: str  # "gpu" or "cpu"
    name: str
    cores: int
    bf16_fast: bool


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and instruction-set flags (Linux; elsewhere unknown and none)."""
    name, flags = "unknown CPU", set[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: no flags, so the safe float32 rule applies
        pass
    return name, flags


@lru_cache(maxsize=1)
def detect_device() -> Device:
    """The accelerator TensorFlow will use; turns on GPU memory growth (nothing else changes)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            # RuntimeError: TensorFlow already initialised the GPU; growth stays as it was.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[0])
        return Device("gpu", str(details.get("device_name", gpus[0].name)), 1, True)
    name, flags = cpu_info()
    bf16 = bool({"amx_bf16", "avx512_bf16"} & flags)
    return Device("cpu", name, os.cpu_count() or 1, bf16)


def choose_variant(precision: str, compile_mode: str, device: Device) -> tuple[str, str]:
    """Resolves ``auto`` to the fastest (precision, compile mode) for ``device``.

    The rule, checked by ``benchmarks/fps.py`` (``auto_is_fastest``): on a CPU, TensorFlow's
    graph kernels beat XLA (about 14x here), and bfloat16 beats float32 where the CPU has
    bfloat16 instructions: about 5x with AMX (Xeon), 2x with AVX-512 BF16 alone (AMD Zen 4),
    and far slower with neither. float16 on a CPU is emulated (16x slower than bfloat16).
    On a GPU, XLA with float16 tensor cores.
    """
    if precision not in PRECISIONS:
        raise UsageError(
            f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}"
        )
    if compile_mode not in COMPILE_MODES:
        raise UsageError(
            f"unknown compile mode {compile_mode!r}: expected one of {', '.join(COMPILE_MODES)}"
        )
    if precision == "auto":
        if device.kind == "gpu":
            precision = "float16"
        else:
            precision = "bfloat16" if device.bf16_fast else "float32"
    if compile_mode == "auto":
        compile_mode = "xla" if device.kind == "gpu" else "graph"
    return precision, compile_mode
