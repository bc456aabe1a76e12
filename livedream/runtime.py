"""The process around a run: logging, TensorFlow's quiet start, signals and the exit.

Only the CLI (and the scripts beside the package) configure output; library code just logs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from livedream.urls import mask_passwords

log = logging.getLogger("livedream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def quiet_libraries(verbose: bool) -> None:
    """Keeps TensorFlow's, OpenCV's and Qt's chatter out of the terminal unless ``--verbose``."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("QT_LOGGING_RULES", "*.warning=false")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:  # imported already (the preview's key names): the variable came too late
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow and finds its devices, hiding the C++ start-up logs unless verbose.

    TensorFlow's C++ logging writes to file descriptor 2 before any setting can stop it (the
    TF_CPP_MIN_LOG_LEVEL variable no longer silences absl's early messages), so stderr is pointed
    at /dev/null for the import alone.
    """
    if verbose or "tensorflow" in sys.modules:
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


class MaskPasswords(logging.Filter):
    """Masks the secrets of any URL in a log message or its traceback (a stream URL logged by
    livedream or by a library), whatever logger it came from (``urls.mask_passwords``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_passwords(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:  # a --verbose traceback
            text = logging.Formatter().formatException(record.exc_info)
            if mask_passwords(text) != text:  # handlers print exc_text as it is
                record.exc_info, record.exc_text = None, mask_passwords(text)
        return True


def setup_logging(console: Console, verbose: bool) -> Callable[[], None]:
    """Logs to ``console``: Rich in a terminal; plain unwrapped lines in a pipe or a log file,
    so that each message stays one line that a script can grep.

    Returns a function that puts the previous logging set-up back (for ``main()`` called
    in-process, whose console may be gone once it returns).
    """
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_time=False, show_path=verbose, markup=False)
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    handler.addFilter(MaskPasswords())
    root, ours = logging.getLogger(), logging.getLogger("livedream")
    saved = (root.handlers[:], root.level, ours.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)

    def restore() -> None:
        root.handlers[:], level, our_level = saved
        root.setLevel(level)
        ours.setLevel(our_level)

    return restore


class Interrupts:
    """First Ctrl-C or SIGTERM: a clean stop (outputs finalized). A second Ctrl-C: exit now.

    Until ``defer()`` (while nothing needs finalizing: checking the request, opening the input,
    importing TensorFlow) the first signal raises ``KeyboardInterrupt`` in the main thread, so
    even a SIGTERM ends a slow start at once. From ``defer()`` on it only sets ``requested`` and
    calls ``on_stop``: the run winds down itself and no exception can cut the finalizing of a
    file short. Handlers are installed from the main thread only (in-process callers elsewhere
    keep their own).
    """

    def __init__(self, *, restore: bool = True) -> None:
        self.requested = threading.Event()
        self.on_stop: Callable[[], None] | None = None
        self._deferred = False
        self._restore = restore  # False: keep the handlers up to the process's exit
        self._previous: dict[int, Any] = {}

    def defer(self, on_stop: Callable[[], None] | None = None) -> None:
        """From now on a signal asks for a clean stop (``on_stop``) instead of raising."""
        if on_stop is not None:
            self.on_stop = on_stop
        self._deferred = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            if signum == signal.SIGINT:
                os.write(2, b"\nforced exit: outputs of this run may be incomplete\n")
                os._exit(EXIT_INTERRUPTED)
            return  # a repeated SIGTERM: the clean stop is already under way
        self.requested.set()
        if not self._deferred:
            raise KeyboardInterrupt
        if signum == signal.SIGINT:  # the outputs may take a moment: say so, and the way out
            os.write(2, b"\nstopping: finishing the outputs (Ctrl-C again quits at once)\n")
        if self.on_stop is not None:
            self.on_stop()

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._deferred = True  # nothing may raise out of the handler any more
        if self._restore:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        self._previous.clear()


def print_error(console: Console, message: str) -> None:
    """One ``error: ...`` line on stderr, never wrapped (a script may grep it)."""
    text = " ".join(mask_passwords(message).split())  # a library's message may hold newlines
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def unexpected(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    return (
        f"unexpected {what}; run again with --verbose for the details, and please report it "
        "with them"
    )


def exit_if_stuck(code: int, *, interrupted: bool) -> None:
    """Ends the process now when interrupted or a pipeline thread is still busy (in TensorFlow).

    Such a daemon thread touches no output, and everything was finalized and reported;
    leaving it to interpreter exit could wait for its TensorFlow call (seconds at a large
    dream size) or crash in TensorFlow's teardown, losing the exit code.
    """
    stuck = [t.name for t in threading.enumerate() if t.name.startswith("livedream-") and t.daemon]
    if not stuck and not interrupted:
        return
    log.debug("exiting now; still busy: %s", ", ".join(stuck) or "nothing")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
