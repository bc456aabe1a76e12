"""Fixtures over ``helpers``: sample media, small videos written on the spot, a fake virtual
camera backend for pyvirtualcam, a real X server (Xvfb) with screen grabs and key presses, and
one built dream step per model setting for the whole session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# pytest-xdist runs the suite in several worker processes (``-n``). Each gets its share of the
# cores, set before TensorFlow or OpenCV starts a thread pool: a worker whose TensorFlow took
# every core would only fight the others. The livedream processes the tests start inherit it.
# These are TensorFlow's and OpenCV's own settings; livedream reads only the first, to share it
# out among a deep render's Ray workers (``deep.ray_runner.local_cores``).
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = str(
        max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    )
    for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OPENCV_FOR_THREADS_NUM"):
        os.environ.setdefault(_name, _threads)

# Every test, and every livedream process a test starts, sees an empty Keras cache, set before
# Keras is imported (it reads KERAS_HOME once): --model auto then runs the bundled vgg16_hed,
# offline, on a developer's machine that holds the Inception weights as on CI. Tests that want
# weights plant them in a cache of their own.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="livedream-test-keras-")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import (
    FAKE_BACKEND,
    FAST,
    MEDIA_DIR,
    FakeCameraLog,
    LivedreamProcess,
    NumberedFrame,
    WriteVideo,
    XScreen,
    XvfbError,
    fake_virtual_camera,
    make_numbered_frame,
    xvfb,
)
from helpers import (
    write_video as _write_video,
)

from livedream.config import DreamConfig

if TYPE_CHECKING:
    from livedream.dream import DreamStep

atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

# Older test modules import these from conftest; helpers is their home now.
__all__ = [
    "FAKE_BACKEND",
    "FAST",
    "MEDIA_DIR",
    "FakeCameraLog",
    "LivedreamProcess",
    "XScreen",
    "make_numbered_frame",
]

# The dream most engine tests share: real weights, small, exact. The dream size is the
# caller's (a step compiles once per shape); the model, layers and precision set the build.
SHARED_DREAM = DreamConfig(
    model="vgg16_hed", layers=("block3_conv3",), dream_size=(64, 48), precision="float32"
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per core, at most 4 (each holds TensorFlow and a model: ~1 GB)."""
    return max(1, min(os.cpu_count() or 1, 4))


# --- media -------------------------------------------------------------------------------


@pytest.fixture
def media_dir() -> Path:
    """The shared sample clips (bikes.mp4, bigbuckbunny.mp4); skips when the folder is absent."""
    if not MEDIA_DIR.is_dir():
        pytest.skip(f"sample media not found at {MEDIA_DIR}")
    return MEDIA_DIR


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 160x120 MJPG clip in a folder anyone may read (for the non-root run)."""
    return _write_video(tmp_path_factory.mktemp("clip") / "clip.avi", frames=40)


@pytest.fixture
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails a ``main()`` run that gets as far as starting TensorFlow."""
    import livedream.cli

    def refuse(verbose: bool) -> None:
        raise AssertionError("TensorFlow was started: the input was not stopped at the door")

    monkeypatch.setattr(livedream.cli, "import_tensorflow", refuse)


@pytest.fixture
def numbered_frame() -> NumberedFrame:
    """``(index, width, height) -> frame``: a frame whose colour encodes its index."""
    return make_numbered_frame


@pytest.fixture
def write_video() -> WriteVideo:
    """A function ``(path, *, frames=30, width=160, height=120, fps=25.0) -> path`` that writes
    a small video of numbered frames with cv2.VideoWriter (MJPG for .avi, mp4v otherwise)."""
    return _write_video


# --- the dream -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def build_shared_step() -> Callable[[DreamConfig], DreamStep]:
    """``(config) -> DreamStep``: built once per model setting for the whole session.

    Only what ``build_step`` builds from (model, weights, layers, guide,
    precision, compile mode, jitter) tells builds apart; the dream size does not.
    """
    from livedream.dream import build_step
    from livedream.resolve import resolve_here

    built: dict[tuple[object, ...], DreamStep] = {}

    def get(config: DreamConfig) -> DreamStep:
        key = (
            config.model,
            config.weights,
            config.layers,
            config.guide,
            config.precision,
            config.compile,
            config.jitter,
        )
        if key not in built:
            built[key] = build_step(resolve_here(config))
        return built[key]

    return get


@pytest.fixture(scope="session")
def shared_step(build_shared_step: Callable[[DreamConfig], DreamStep]) -> DreamStep:
    """The built step of ``SHARED_DREAM`` (block3_conv3, float32), shared by the session."""
    return build_shared_step(SHARED_DREAM)


# --- virtual camera ----------------------------------------------------------------------


@pytest.fixture
def fake_vcam() -> Iterator[FakeCameraLog]:
    """Registers a pyvirtualcam backend named ``livedream-test`` that records every frame.

    Set ``fail_open`` or ``fail_after`` on the returned log to make the backend fail.
    """
    with fake_virtual_camera() as log:
        yield log


@pytest.fixture
def vcam_env(fake_vcam: FakeCameraLog, monkeypatch: pytest.MonkeyPatch) -> FakeCameraLog:
    """``fake_vcam``, and ``LIVEDREAM_VCAM_BACKEND`` pointing livedream's virtual camera at it."""
    monkeypatch.setenv("LIVEDREAM_VCAM_BACKEND", FAKE_BACKEND)
    return fake_vcam


# --- X display -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A real X server (Xvfb, 1280x1024x24) for the whole session; sets ``DISPLAY`` to it.

    Fails, never skips, when Xvfb is missing: the preview checks must run.
    """
    try:
        with xvfb() as display:
            yield display
    except XvfbError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def x_screen(xvfb_display: str) -> Iterator[XScreen]:
    """Screen grabs and key presses on the test X server."""
    screen = XScreen(xvfb_display)
    try:
        yield screen
    finally:
        screen.close()


@pytest.fixture
def press_key(x_screen: XScreen) -> Callable[..., None]:
    """``press_key(key, window_title=None)``: a key press on the test X server via XTest."""
    return x_screen.press_key
