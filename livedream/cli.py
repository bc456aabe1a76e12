"""The ``livedream`` command: dream a webcam, a video file or a photo.

    livedream                                  # webcam 0 in a preview window
    livedream --virtual-cam                    # a camera that Zoom, Meet, Teams or OBS can pick
    livedream --input clip.mp4 --output dream.mp4
    livedream --demo                           # dream the bundled sample clip into dream.mp4

Exit codes: 0 done, 1 runtime error, 2 bad usage, 130 interrupted (outputs finalized).
The pieces: ``args`` (flags), ``plan`` (what kind of run), ``resolve`` (what is dreamed and at
which precision), ``runtime`` (logging, TensorFlow, signals), ``run`` (the run itself),
``preview`` (the window and its keys), ``outputs`` (sinks). Engine errors that carry data
(out of memory) are worded here, where the flags are known.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from livedream.args import parse_args
from livedream.config import RunConfig
from livedream.errors import AcceleratorMemoryError, LivedreamError
from livedream.runtime import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupts,
    exit_if_stuck,
    import_tensorflow,
    print_error,
    quiet_libraries,
    setup_logging,
    unexpected,
)

if TYPE_CHECKING:
    from livedream.resolve import ResolvedDream

log = logging.getLogger("livedream")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0 done, 1 error, 2 bad usage, 130 interrupted).

    Called with no ``argv`` it is the command itself (``livedream``, ``python -m livedream``):
    its signal handlers then stay up to the end (a late second Ctrl-C still forces the exit),
    and an interrupted run, or one whose dream thread is still inside a long TensorFlow call,
    ends the process at once, once every output is finalized, instead of waiting for that call
    and TensorFlow's teardown at interpreter exit.
    """
    try:
        config, args = parse_args(argv)
    except SystemExit as exc:  # --help, --version and bad usage exit from argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    console = Console(stderr=True)
    quiet_libraries(config.verbose)
    restore_logging = setup_logging(console, config.verbose)
    command = argv is None
    try:
        with Interrupts(restore=not command) as interrupts:
            try:
                code = _main(config, args, console, interrupts)
            except KeyboardInterrupt:  # raised into one of _main's own handlers
                code = EXIT_INTERRUPTED
    finally:
        if not command:
            restore_logging()
    if command:
        exit_if_stuck(code, interrupted=code == EXIT_INTERRUPTED)
    return code


def _main(
    config: RunConfig, args: argparse.Namespace, console: Console, interrupts: Interrupts
) -> int:
    try:
        if args.list_cameras:
            return list_cameras_command(Console())
        if args.doctor:
            from livedream.doctor import run_doctor

            return run_doctor(Console())
        if args.get_weights:
            from livedream.weights import get_weights_command

            return get_weights_command(args.get_weights, url=args.weights_url, console=console)
        return _run(config, console, interrupts)
    except AcceleratorMemoryError as exc:
        print_error(console, out_of_memory(exc))
        return exc.exit_code
    except LivedreamError as exc:
        print_error(console, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except MemoryError:
        print_error(console, out_of_memory(AcceleratorMemoryError()))
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line, the traceback with --verbose
        if config.verbose:
            console.print_exception()
        print_error(console, unexpected(exc))
        return EXIT_ERROR
    finally:
        interrupts.defer()  # from here on a signal cannot raise into the reporting


def list_cameras_command(console: Console) -> int:
    """Prints the webcams found, one a line."""
    from livedream.sources import list_cameras

    cameras = list_cameras()
    if not cameras:
        console.print("no webcams found (checked indices 0-9)")
        return EXIT_OK
    for cam in cameras:
        console.print(f"{cam.index}: {cam.width}x{cam.height} @ {cam.fps:.3g} fps ({cam.backend})")
    return EXIT_OK


def out_of_memory(exc: AcceleratorMemoryError) -> str:
    """The one-line message for running out of memory: what happened, and the flags to try."""
    return f"{exc}: try a smaller --dream-size (e.g. 320x240) or fewer --layers"


def _warn_if_slow_variant(dream: ResolvedDream) -> None:
    """float16 is emulated and XLA slow on a CPU: say so when one is asked for there."""
    precision, compile_mode = dream.precision, dream.compile_mode
    if dream.device.kind == "cpu" and (precision == "float16" or compile_mode == "xla"):
        log.warning(
            "--precision %s --compile %s is far slower than auto on a CPU (14-16x on the "
            "development machine); leave both on auto for speed",
            precision,
            compile_mode,
        )


def _run(config: RunConfig, console: Console, interrupts: Interrupts) -> int:
    from livedream.limits import check_frames
    from livedream.plan import check_request, plan_run
    from livedream.sources import ImageSource, VideoFileSource, open_source

    look = check_request(config)
    source = open_source(config.input, width=config.width, height=config.height, fps=config.fps)
    with source:
        plan = plan_run(config, source)  # before TensorFlow's seconds of start-up
        check_frames(config, look.spec, source.width, source.height, still=plan.still)
        if plan.deep:  # chunked, resumable (livedream.deep)
            from livedream.deep.render import run_deep

            assert isinstance(source, VideoFileSource)  # plan_run: a deep render needs a file
            return run_deep(config, plan, look, source, console, interrupts)
        console.print(
            f"starting TensorFlow for {source.name}...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        import_tensorflow(config.verbose)
        from livedream.device import detect_device
        from livedream.resolve import resolve_dream
        from livedream.run import StreamRun, run_still

        dream = resolve_dream(look, detect_device(), auto_size=plan.auto_size)
        _warn_if_slow_variant(dream)
        if plan.still:
            assert isinstance(source, ImageSource)  # plan_run: an image output needs a photo
            return run_still(config, plan, dream, source, console, interrupts)
        # From the first output file on, a signal asks for a clean stop instead of raising.
        interrupts.defer()
        code = StreamRun(config, source, console, plan=plan, dream=dream).run(interrupts)
    if config.demo and code == EXIT_OK:
        log.info(
            "your dreamed clip is %s; next, dream your webcam: `livedream` (a preview window), "
            "or `livedream --virtual-cam` for Zoom, Meet, Teams or OBS",
            config.output,
        )
    return code
