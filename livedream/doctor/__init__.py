"""``livedream --doctor``: checks this machine the way a support page would, in seconds.

Nothing is dreamed and no model is built. Each check gives one or more rows (ok, problem or
info); a problem row carries the exact fix. Every check is guarded, so whatever is missing
the doctor prints its table and never a traceback. Also ``python -m livedream.doctor``.

Exit code: 0 when livedream can run at least one way (a file dreamed to a file: TensorFlow
imports and the bundled weights are readable), 1 otherwise.
"""

from __future__ import annotations

import os
import platform

from rich.console import Console
from rich.table import Table
from rich.text import Text

from livedream.doctor import checks
from livedream.doctor.control import check_control
from livedream.doctor.rows import CheckResult, guarded, info

# --- the report -------------------------------------------------------------------------------


def collect_checks() -> list[CheckResult]:
    """Runs every check, in the table's order; never raises (a failed check is a problem row)."""
    rows = guarded("python", checks.check_python)
    tensorflow = guarded("tensorflow", checks.check_tensorflow, required=True)
    rows += tensorflow
    if all(row.status == "ok" for row in tensorflow):
        rows += guarded("cpu", checks.check_device)
    else:
        rows.append(info("cpu", "not checked: needs TensorFlow"))
    linux = platform.system() == "Linux"
    if linux:
        rows += guarded("video devices", checks.check_video_nodes)
    rows += guarded("cameras", checks.check_cameras)
    rows += guarded("preview window", checks.check_preview)
    rows += (
        guarded("v4l2loopback", checks.check_loopback)
        if linux
        else guarded("obs", checks.check_obs)
    )
    rows += guarded("virtual camera", checks.check_virtual_camera)
    rows += guarded("bundled weights", checks.check_bundled_weights, required=True)
    rows += guarded("keras cache", checks.check_keras_cache)
    rows += guarded("control page", check_control)
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
