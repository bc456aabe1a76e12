"""The ``livedream`` command: dream a webcam, a video file or a photo.

    livedream                                  # webcam 0 in a preview window
    livedream --virtual-cam                    # a camera that Zoom, Meet, Teams or OBS can pick
    livedream --input clip.mp4 --output dream.mp4
    livedream --demo                           # dream the bundled sample clip into dream.mp4

Exit codes: 0 done, 1 runtime error, 2 bad usage, 130 interrupted (outputs finalized).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from livedream import __version__
from livedream.config import COMPILE_MODES, PRECISIONS, DreamConfig, RunConfig
from livedream.errors import LivedreamError, SinkError, UsageError, VirtualCameraError
from livedream.models import MODELS

if TYPE_CHECKING:
    import numpy as np

    from livedream.dream import Dreamer
    from livedream.pipeline import Stats, TimedFrame
    from livedream.sinks import PreviewWindow, Sink, VirtualCameraSink
    from livedream.sources import Source

log = logging.getLogger("livedream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SAMPLE_CLIP = Path(__file__).parent / "data" / "sample.mp4"
DEMO_OUTPUT = Path("dream.mp4")
VCAM_BACKEND_ENV = "LIVEDREAM_VCAM_BACKEND"  # a pyvirtualcam backend name, e.g. obs
SLOW_HINT_AFTER = 20  # output frames into a live run: the dream's fps has settled by then
SLOW_HINT_FPS = 8.0  # below this a live picture looks sluggish
STEP_SIZE_FACTOR = 1.25  # one +/- key press: a quarter stronger or weaker
MAX_STEPS = 20
KEYS_HELP = (
    "preview keys: q/Esc quit, space dream on/off, +/- strength, [/] steps per frame, "
    "l layer preset, f flow carry, r reset, m mirror, s screenshot, h heads-up overlay"
)


# -- arguments ---------------------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit code 2, not argparse's usage dump.

    Shared with ``benchmarks/fps.py`` and ``scripts/soak.py``, with the value checks below.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to a flag's help unless X is None/False or the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def size_arg(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 320x240, got {text!r}"
        ) from None
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise argparse.ArgumentTypeError(
            f"expected a size from 16x16 to 8192x8192 such as 320x240, got {text}"
        )
    return width, height


def layers_arg(text: str) -> tuple[str, ...]:
    layers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not layers:
        raise argparse.ArgumentTypeError(f"expected layer names like block4_conv3, got {text!r}")
    return layers


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every default is shown by ``--help``."""
    defaults = DreamConfig()
    parser = OneLineParser(
        prog="livedream",
        description="Real-time DeepDream filter for webcams, video files and photos.",
        epilog=KEYS_HELP + ". Exit codes: 0 done, 1 error, 2 bad usage, 130 interrupted.",
        formatter_class=HelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "--input",
        "-i",
        default="0",
        help="webcam index (0, 1, ...), device path (/dev/video0), video file or image",
    )
    io.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="write a video file (.mp4 .m4v .mov .mkv .avi), or an image (.png .jpg .webp ...) "
        "for a photo input",
    )
    io.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a preview window (default: on for webcams and files with nothing else to "
        "write, when a display exists)",
    )
    io.add_argument(
        "--virtual-cam",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help="publish to a virtual camera (optionally a device such as /dev/video10)",
    )
    io.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    io.add_argument(
        "--demo",
        action="store_true",
        help=f"dream the bundled sample clip into {DEMO_OUTPUT} (replaces its own output)",
    )
    io.add_argument("--list-cameras", action="store_true", help="list webcams and exit")
    io.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N output frames",
    )
    cam = parser.add_argument_group("camera")
    cam.add_argument("--width", type=positive_int, default=None, help="camera width to ask for")
    cam.add_argument("--height", type=positive_int, default=None, help="camera height to ask for")
    cam.add_argument(
        "--fps",
        type=positive_float,
        default=None,
        help="camera fps to ask for; the pace of a photo shown live (default 30)",
    )
    cam.add_argument("--mirror", action="store_true", help="flip the picture left-right")
    dream = parser.add_argument_group("dream")
    dream.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=defaults.model,
        help="network to dream with (vgg16_hed works offline)",
    )
    dream.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="local Keras .h5 / .weights.h5 file instead of the model's own",
    )
    dream.add_argument(
        "--layers",
        type=layers_arg,
        default=None,
        help="comma-separated layers to dream (default: the model's own)",
    )
    dream.add_argument(
        "--steps", type=positive_int, default=defaults.steps, help="gradient steps per frame"
    )
    dream.add_argument(
        "--step-size",
        type=positive_float,
        default=defaults.step_size,
        help="strength: fraction of the 0..255 range moved per step",
    )
    dream.add_argument(
        "--dream-size",
        type=size_arg,
        default=None,
        metavar="WxH",
        help=f"size the dream runs at (default: short side {defaults.short_side},"
        " keeping the aspect ratio); a photo is dreamed at its own size, up to 1280 px",
    )
    dream.add_argument(
        "--blend",
        type=fraction,
        default=defaults.blend,
        help="share of the previous frame's dream carried on (0 = none)",
    )
    dream.add_argument(
        "--no-flow",
        action="store_true",
        help="carry the dream in place instead of following motion",
    )
    dream.add_argument(
        "--octaves",
        type=positive_int,
        default=defaults.octaves,
        help="scales a photo is dreamed at",
    )
    dream.add_argument(
        "--octave-steps",
        type=positive_int,
        default=defaults.octave_steps,
        help="gradient steps per octave for a photo (--steps is per video frame)",
    )
    dream.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="number format; auto picks the fastest for this machine",
    )
    dream.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=defaults.compile,
        help="graph (TensorFlow), xla or eager; auto picks per device",
    )
    dream.add_argument("--seed", type=int, default=defaults.seed, help="random jitter seed")
    parser.add_argument("--hud", action="store_true", help="start with the heads-up overlay on")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show debug logs and TensorFlow's own messages"
    )
    parser.add_argument("--version", action="version", version=f"livedream {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[RunConfig, argparse.Namespace]:
    """Parses ``argv`` into a ``RunConfig`` (and the raw namespace for the one-off flags)."""
    args = build_parser().parse_args(argv)
    dream = DreamConfig(
        model=args.model,
        weights=args.weights,
        layers=args.layers or (),
        steps=args.steps,
        step_size=args.step_size,
        dream_size=args.dream_size,
        blend=args.blend,
        flow=not args.no_flow,
        octaves=args.octaves,
        octave_steps=args.octave_steps,
        precision=args.precision,
        compile=args.compile,
        seed=args.seed,
    )
    config = RunConfig(
        input=args.input,
        output=args.output,
        preview=args.preview,
        virtual_cam=args.virtual_cam,
        width=args.width,
        height=args.height,
        fps=args.fps,
        mirror=args.mirror,
        max_frames=args.max_frames,
        overwrite=args.overwrite,
        hud=args.hud,
        verbose=args.verbose,
        dream=dream,
    )
    if args.demo:
        config = replace(
            config,
            input=str(SAMPLE_CLIP),
            output=config.output or DEMO_OUTPUT,
            overwrite=config.overwrite or config.output is None,
        )
    return config, args


# -- logging and TensorFlow's chatter -------------------------------------------------------------
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


# -- Ctrl-C and SIGTERM -----------------------------------------------------------------------
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


# -- checks at the door -------------------------------------------------------------------------
def check_request(config: RunConfig) -> None:
    """Checks what can be checked before a camera, a file or TensorFlow is opened.

    The model and its layers, a ``--weights`` file, the ``--output`` path (folder, rights, an
    existing file) and an explicit ``--preview``: each fails here in one line, in well under a
    second, instead of after the model has loaded.

    Raises:
        LayerError, WeightsError, SinkError, DisplayError: with a one-line reason.
    """
    from livedream.models import check_layers, check_weights_file, get_spec
    from livedream.sinks import check_display, check_output_path

    check_layers(get_spec(config.dream.model), config.dream.layers)
    if config.dream.weights is not None:
        # The same check load_model() makes in the dream thread, made early.
        check_weights_file(config.dream.weights)
    if config.output is not None:
        check_output_path(config.output, overwrite=config.overwrite)
    if config.preview:
        check_display()


def check_source(config: RunConfig, source: Source) -> bool:
    """Checks that the outputs fit the opened ``source``; returns whether to show the preview.

    Raises:
        UsageError: an image output for a video, a video from a photo without --max-frames,
            or nothing at all to show the dream on.
    """
    from livedream.sinks import has_display
    from livedream.sources import ImageSource

    still = isinstance(source, ImageSource)
    if _is_image_path(config.output):
        if not still:
            raise SinkError(
                f"--output {config.output} is an image but the input is a video; "
                "give a video file (.mp4 .avi .mkv .mov)"
            )
        return False
    records = config.output is not None
    if still and records and config.max_frames is None:
        raise UsageError(
            f"{source.name} is a photo: a video from it needs --max-frames N "
            "(or give an image --output for the octave dream)"
        )
    preview = config.preview
    if preview is None:
        preview = has_display() and not records and config.virtual_cam is None
    if not preview and not records and config.virtual_cam is None:
        why = (
            "the preview is off (--no-preview)"
            if config.preview is False
            else "no display for a preview window here"
        )
        raise UsageError(
            f"nothing to show the dream on: {why}; give --output FILE or --virtual-cam"
            + ("" if config.preview is False else ", or run where a display exists")
        )
    return preview


# -- the run ------------------------------------------------------------------------------------
def _is_image_path(path: Path | None) -> bool:
    from livedream.sources import IMAGE_EXTENSIONS

    return path is not None and path.suffix.lower() in IMAGE_EXTENSIONS


def _open_sinks(config: RunConfig, source: Source) -> tuple[list[Sink], VirtualCameraSink | None]:
    """Opens the file and virtual-camera outputs; closes what opened when one fails."""
    from livedream.sinks import ImageFileSink, VideoFileSink, VirtualCameraSink

    sinks: list[Sink] = []
    vcam: VirtualCameraSink | None = None
    try:
        if config.output is not None:
            if _is_image_path(config.output):  # a photo: check_source refused a video
                sinks.append(ImageFileSink(config.output, overwrite=config.overwrite))
            else:
                sinks.append(
                    VideoFileSink(
                        config.output,
                        width=source.width,
                        height=source.height,
                        fps=source.fps or 30.0,
                        overwrite=config.overwrite,
                    )
                )
        if config.virtual_cam is not None:
            vcam = VirtualCameraSink(
                width=source.width,
                height=source.height,
                fps=source.fps or 30.0,
                device=config.virtual_cam or None,
                # Advanced and for tests: one pyvirtualcam backend instead of trying each.
                backend=os.environ.get(VCAM_BACKEND_ENV) or None,
            )
            sinks.append(vcam)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks, vcam


def _make_dreamer(config: DreamConfig) -> Callable[[], Dreamer]:
    def make() -> Dreamer:
        from livedream.dream import Dreamer

        return Dreamer(config)

    return make


class KeyHandler:
    """What the preview's keys do. Main thread."""

    def __init__(
        self,
        controls: Any,
        presets: Sequence[tuple[str, ...]],
        base: DreamConfig,
        *,
        current: tuple[str, ...] = (),
    ) -> None:
        self.controls = controls
        self.presets = list(presets)
        # The first `l` press moves on from the layers being dreamed, wherever they sit.
        self.preset = self.presets.index(current) if current in self.presets else 0
        self.steps = base.steps
        self.step_size = base.step_size
        self.flow = base.flow
        self.hud = False
        self.quit = False
        self.screenshot = False

    def handle(self, key: int) -> str | None:
        """Applies ``key``; returns a short note of what changed, or None."""
        c = self.controls
        ch = chr(key) if 0 <= key < 256 else ""
        from livedream.sinks import KEY_ESC

        if ch in ("q", "Q") or key == KEY_ESC:
            self.quit = True
            return "quit"
        if ch == " ":
            c.enabled = not c.enabled
            return f"dream {'on' if c.enabled else 'off'}"
        if ch in ("+", "="):
            self.step_size = min(0.2, self.step_size * STEP_SIZE_FACTOR)
            c.step_size = self.step_size
            return f"strength {self.step_size:.4f}"
        if ch in ("-", "_"):
            self.step_size = max(0.0005, self.step_size / STEP_SIZE_FACTOR)
            c.step_size = self.step_size
            return f"strength {self.step_size:.4f}"
        if ch == "]":
            self.steps = min(MAX_STEPS, self.steps + 1)
            c.steps = self.steps
            return f"steps {self.steps}"
        if ch == "[":
            self.steps = max(1, self.steps - 1)
            c.steps = self.steps
            return f"steps {self.steps}"
        if ch == "l" and self.presets:
            self.preset = (self.preset + 1) % len(self.presets)
            c.layers = self.presets[self.preset]
            return f"layers {','.join(self.presets[self.preset])}"
        if ch == "f":
            self.flow = not self.flow
            c.flow = self.flow
            return f"flow carry {'on' if self.flow else 'off'}"
        if ch == "r":
            c.reset = True
            return "dream reset"
        if ch == "m":
            c.mirror = not c.mirror
            return f"mirror {'on' if c.mirror else 'off'}"
        if ch == "s":
            self.screenshot = True
            return "screenshot"
        if ch == "h":
            self.hud = not self.hud
            return f"overlay {'on' if self.hud else 'off'}"
        return None


def _screenshot(image: Any) -> Path:
    import cv2

    path = Path(f"livedream-{datetime.now():%Y%m%d-%H%M%S-%f}.png")
    if not cv2.imwrite(str(path), image):
        raise SinkError(f"could not write the screenshot {path}: is the folder writable?")
    return path


def _info(
    config: RunConfig, source: Source, dreamer: Dreamer | None, keys: KeyHandler
) -> dict[str, str]:
    """The rows of the status table and the overlay: what is being dreamed, as the keys set it."""
    info = {"input": f"{source.name} {source.width}x{source.height} @ {source.fps:.3g} fps"}
    if dreamer is not None:
        w, h = config.dream.size_for(source.width, source.height)
        layers = keys.controls.layers or dreamer.layers
        info["model"] = f"{config.dream.model} ({','.join(layers)})"
        info["dream"] = (
            f"{w}x{h}, {keys.steps} steps of {keys.step_size:.4f}, "
            f"flow {'on' if keys.flow else 'off'}, {dreamer.step.model.dtype}, "
            f"{dreamer.step.compile_mode}"
        )
    return info


def run_still(
    config: RunConfig, source: Source, console: Console, interrupts: Interrupts | None = None
) -> int:
    """A photo to an image file: octaves, the classic look.

    Ctrl-C while dreaming stops at once and writes nothing; once the picture is dreamed it is
    saved whatever comes.
    """
    from livedream.dream import dream_image
    from livedream.sources import ImageSource

    assert isinstance(source, ImageSource)
    sinks, _ = _open_sinks(config, source)
    with console.status("dreaming the photo in octaves..."):
        try:
            image = dream_image(source.image, config.dream)
            if interrupts is not None:
                interrupts.defer()
            for sink in sinks:
                sink.write(image)
        finally:
            for sink in sinks:
                sink.close()
    if interrupts is not None and interrupts.requested.is_set():
        return EXIT_INTERRUPTED
    return EXIT_OK


class StreamRun:
    """A stream (webcam, video file, photo shown live) through the pipeline to the outputs.

    The main thread takes dreamed frames, writes them to the file and the virtual camera, and
    shows them in the preview window (which macOS requires on the main thread).
    """

    def __init__(
        self, config: RunConfig, source: Source, console: Console, *, preview: bool | None = None
    ) -> None:
        """``preview``: what ``check_source`` decided, when the caller ran it already."""
        from livedream.models import get_spec
        from livedream.pipeline import Controls, Pipeline
        from livedream.sinks import PreviewWindow, VideoFileSink
        from livedream.sources import ImageSource, WebcamSource

        self.config = config
        self.source = source
        self.console = console
        is_file = not source.is_live
        records = config.output is not None
        # A file (or a photo) rendered to a file loses nothing: the queues block. Everything
        # else drops frames to stay live.
        self.live = not ((is_file or isinstance(source, ImageSource)) and records)
        if preview is None:
            preview = check_source(config, source)
        self.vcam_error = ""  # why the virtual camera stopped mid-run, if it did
        self.window: PreviewWindow | None = PreviewWindow("livedream") if preview else None
        try:
            self.sinks, self.vcam = _open_sinks(config, source)
        except BaseException:
            if self.window is not None:
                self.window.close()
            raise
        # A live recording plays in real time: each frame is repeated until the next one.
        self.realtime: Sink | None = None
        if self.live and records and isinstance(self.sinks[0], VideoFileSink):
            self.realtime = self.sinks[0]
        self.written = 0  # frames in the real-time recording, held ones included
        self.held: np.ndarray | None = None  # the last frame written there
        self.first_capture: float | None = None
        self.controls = Controls(mirror=config.mirror)
        presets = list(get_spec(config.dream.model).presets)
        if config.dream.layers and config.dream.layers not in presets:
            presets.insert(0, config.dream.layers)
        current = config.dream.layers or get_spec(config.dream.model).default_layers
        self.keys = KeyHandler(self.controls, presets, config.dream, current=current)
        self.keys.hud = config.hud
        pace = None if not self.live or isinstance(source, WebcamSource) else source.fps
        self.total = None if self.live else (source.frame_count or config.max_frames)
        if self.total is not None and config.max_frames is not None:
            self.total = min(self.total, config.max_frames)
        self.pipeline = Pipeline(
            source,
            _make_dreamer(config.dream),
            live=self.live,
            pace_fps=pace,
            controls=self.controls,
            max_frames=None if self.live else config.max_frames,
        )
        self.info: dict[str, str] = {}

    @property
    def stats(self) -> Stats:
        return self.pipeline.stats

    def _deliver(self, frame: TimedFrame) -> None:
        """Writes ``frame`` to every output; drops a virtual camera that failed."""
        for sink in self.sinks:
            if sink is self.realtime:
                # The frame slot this capture falls in, at the camera's fps: the frame before is
                # held until then, so the file plays in real time. Each frame is written at least
                # once, so a camera that delivers in bursts costs no dreamed frame.
                if self.first_capture is None:
                    self.first_capture = frame.captured
                slot = int((frame.captured - self.first_capture) * (self.source.fps or 30.0))
                while self.held is not None and self.written < slot:
                    sink.write(self.held)
                    self.written += 1
                self.held = frame.image
                self.written += 1
            sink.write(frame.image)
        vcam = self.vcam
        if vcam is not None and vcam.failed:
            # The sink has warned already; the run goes on and ends with exit code 1.
            self.vcam_error = vcam.error
            self.sinks.remove(vcam)
            vcam.close()
            self.vcam = None
            if self.window is None and not self.sinks:
                raise VirtualCameraError(
                    f"{vcam.error}, and nothing else shows the dream; check the virtual camera "
                    "(is another app holding it? was the loopback driver unloaded?) and start again"
                )

    def _show(self, frame: TimedFrame) -> bool:
        """Shows ``frame`` in the preview and handles a key; False when the user quit."""
        if self.window is None:
            return True
        from livedream.sinks import draw_hud
        from livedream.ui import hud_lines

        image = frame.image
        if self.keys.hud:
            image = draw_hud(image, hud_lines(self.stats, self.info))
        key = self.window.show(image)
        if key >= 0:
            note = self.keys.handle(key)
            if self.keys.screenshot:
                self.keys.screenshot = False
                try:
                    log.info("saved %s", _screenshot(frame.image))
                except SinkError as exc:  # a failed screenshot must not end a live session
                    log.warning("%s", exc)
            elif note:
                log.info("%s", note)
                self.info.update(_info(self.config, self.source, self.pipeline.dreamer, self.keys))
        return not self.keys.quit and self.window.is_open()

    def run(self, interrupts: Interrupts | None = None) -> int:
        """Runs until the input ends, the user quits, an error or an interrupt; returns the code.

        Whatever ends the run, every frame already dreamed reaches the outputs and the files
        are finalized before this returns or raises.

        Raises:
            LivedreamError: the input was lost or the dream failed (outputs finalized first).
        """
        if interrupts is None:
            with Interrupts() as own:
                return self.run(own)
        from livedream.ui import StatusDisplay

        pipeline = self.pipeline
        display = StatusDisplay(self.console, total=self.total, info=self.info)
        interrupts.defer(pipeline.done.set)
        try:
            if not interrupts.requested.is_set():
                pipeline.start()
                self._wait_for_model(interrupts.requested)
                self.info.update(_info(self.config, self.source, pipeline.dreamer, self.keys))
                with display:
                    self._loop(display)
                    pipeline.stop()  # the threads end; what they already dreamed stays queued
                    limit = self.config.max_frames
                    while limit is None or self.stats.output < limit:
                        if (frame := pipeline.next_frame(0)) is None:
                            break
                        self._deliver(frame)
                    display.close(self.stats)  # the last state: a finished bar reads 100%
        finally:
            self._close()
        self._report()
        if interrupts.requested.is_set():
            return EXIT_INTERRUPTED
        if pipeline.error is not None:
            raise pipeline.error
        if getattr(self.source, "damaged", False):
            _print_error(self.console, getattr(self.source, "damage_message", "input damaged"))
            return EXIT_ERROR
        if self.vcam_error:
            _print_error(
                self.console,
                f"{self.vcam_error}; the other outputs went on to the end",
            )
            return EXIT_ERROR
        return EXIT_OK

    def _close(self) -> None:
        """Stops the threads and finalizes every output; the first close error wins."""
        error: BaseException | None = None
        self.pipeline.stop()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # finalize the others before reporting it
                error = error or exc
        if self.window is not None:
            self.window.close()
        if error is not None:
            raise error

    def _wait_for_model(self, interrupted: threading.Event) -> None:
        waiting = _waiting_frame(self.source.width, self.source.height)
        with self.console.status(f"loading {self.config.dream.model} and compiling the dream..."):
            while not self.pipeline.ready.wait(0.03) and not interrupted.is_set():
                if self.window is not None:
                    self.window.show(waiting)

    def _loop(self, display: Any) -> None:
        pipeline, stats, last = self.pipeline, self.stats, None
        max_frames = self.config.max_frames
        while True:
            if pipeline.done.is_set():  # interrupted or failed: run() delivers what is queued
                return
            frame = pipeline.next_frame(0.02)
            if frame is None:
                if pipeline.ended:
                    return
                # Keep the window responsive while the dream works on the next frame.
                if last is not None and not self._show(last):
                    return
                display.update(stats)
                continue
            last = frame
            self._deliver(frame)
            if not self._show(frame):
                return
            display.update(stats)
            if stats.output == SLOW_HINT_AFTER and self.live:
                self._hint_if_slow()
            if max_frames is not None and stats.output >= max_frames:
                return

    def _hint_if_slow(self) -> None:
        """Once, early in a live run: says how to go faster when the dream is slow here."""
        seconds = self.stats.dream_seconds
        if not seconds:
            return
        rate = 1.0 / max(1e-6, statistics.median(seconds))  # right even below 1 frame a second
        if rate < SLOW_HINT_FPS:
            log.info(
                "dreaming at %.1f fps on this machine; --dream-size 240x180 or --steps 1 is "
                "faster (the README's Performance section tells how to measure)",
                rate,
            )

    def _report(self) -> None:
        stats = self.stats
        log.info(
            "%d frames out, %d dropped to stay live, latency p50 %.0f ms, p95 %.0f ms",
            stats.output,
            stats.dropped,
            stats.latency_ms(0.5),
            stats.latency_ms(0.95),
        )


def _waiting_frame(width: int, height: int) -> Any:
    """A dark frame saying the model is loading, for the preview meanwhile."""
    import cv2
    import numpy as np

    image = np.zeros((max(120, height // 2), max(320, width // 2), 3), np.uint8)
    cv2.putText(
        image,
        "loading the dream...",
        (20, 60),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return image


def list_cameras_command(console: Console) -> int:
    from livedream.sources import list_cameras

    cameras = list_cameras()
    if not cameras:
        console.print("no webcams found (checked indices 0-9)")
        return EXIT_OK
    for cam in cameras:
        console.print(f"{cam.index}: {cam.width}x{cam.height} @ {cam.fps:.3g} fps ({cam.backend})")
    return EXIT_OK


def _print_error(console: Console, message: str) -> None:
    """One ``error: ...`` line on stderr, never wrapped (a script may grep it)."""
    text = " ".join(message.split())  # a message from a library may hold newlines
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _unexpected(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    return (
        f"unexpected {what}; run again with --verbose for the details, and please report it "
        "with them"
    )


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
        _exit_if_stuck(code, interrupted=code == EXIT_INTERRUPTED)
    return code


def _main(
    config: RunConfig, args: argparse.Namespace, console: Console, interrupts: Interrupts
) -> int:
    try:
        if args.list_cameras:
            return list_cameras_command(Console())
        return _run(config, console, interrupts)
    except LivedreamError as exc:
        _print_error(console, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except MemoryError:
        _print_error(
            console,
            "out of memory: try a smaller --dream-size (e.g. 320x240), fewer --layers or a "
            "smaller input",
        )
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line, the traceback with --verbose
        if config.verbose:
            console.print_exception()
        _print_error(console, _unexpected(exc))
        return EXIT_ERROR
    finally:
        interrupts.defer()  # from here on a signal cannot raise into the reporting


def _exit_if_stuck(code: int, *, interrupted: bool) -> None:
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


def _warn_if_slow_variant(config: DreamConfig) -> None:
    """float16 is emulated and XLA slow on a CPU: say so when one is asked for there."""
    from livedream.dream import choose_variant, detect_device

    device = detect_device()
    precision, compile_mode = choose_variant(config.precision, config.compile, device)
    if device.kind == "cpu" and (precision == "float16" or compile_mode == "xla"):
        log.warning(
            "--precision %s --compile %s is far slower than auto on a CPU (14-16x on the "
            "development machine); leave both on auto for speed",
            precision,
            compile_mode,
        )


def _run(config: RunConfig, console: Console, interrupts: Interrupts) -> int:
    from livedream.sources import ImageSource, open_source

    check_request(config)
    source = open_source(config.input, width=config.width, height=config.height, fps=config.fps)
    with source:
        still = isinstance(source, ImageSource) and _is_image_path(config.output)
        preview = check_source(config, source)  # before TensorFlow's seconds of start-up
        console.print(
            f"starting TensorFlow for {source.name}...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        import_tensorflow(config.verbose)
        _warn_if_slow_variant(config.dream)
        if still:
            return run_still(config, source, console, interrupts)
        # From the first output file on, a signal asks for a clean stop instead of raising.
        interrupts.defer()
        return StreamRun(config, source, console, preview=preview).run(interrupts)
