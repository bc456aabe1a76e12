"""The run plan: what kind of run this is, decided once at the door and frozen.

``check_request`` looks at the flags alone (before any camera, file or TensorFlow is opened)
and returns the checked ``Look`` (``livedream.resolve``); ``plan_run`` looks at the opened
source too and decides everything the run then follows: a still photo, a deep render or a
stream, live or not, the pace, the frame total and cap, the face strength, the preview.
"""

from __future__ import annotations

from dataclasses import dataclass

from livedream.config import LIVE_FACE_STRENGTH, RunConfig, protecting
from livedream.errors import SinkError, UsageError
from livedream.media import is_image_path
from livedream.resolve import Look, check_look
from livedream.sources import ImageSource, Source, VideoFileSource

# What the deep-render flags are called together in their one-line refusals.
DEEP_FLAGS = "--octaves/--octave-steps/--chunk-frames/--workers/--cluster"


@dataclass(frozen=True)
class RunPlan:
    """How one run goes, decided once from the flags and the opened source.

    Attributes:
        still: a photo dreamed in octaves to an image file (no stream at all).
        live: every captured frame goes out at once, the dream refreshed behind it as fast as
            it can; False: a file or a photo rendered to a file, where nothing is lost.
        preview: show the preview window.
        pace_fps: read the source at this rate (a file or photo played live); None: as it comes.
        max_frames: stop capturing after this many frames (a file render); None: no limit.
        frame_cap: stop after this many output frames (``--max-frames``, any run); None: none.
        total: frames a file render will produce (the progress bar); None for a live run.
        fps: the rate outputs run at (the recording, the virtual camera).
        realtime_recording: the recording keeps real time by holding frames (a camera).
        dream_every: a file render dreams every Nth frame and composites the rest.
        face_strength: the share of the dream kept on faces (1: no protection).
        auto_size: the dream's size follows the machine (``--dream-size auto``, the default of
            a live run without a fixed ``--dream-size``); False: the size asked for, or the
            short side's.
        deep: a deep render of a video file (``livedream.deep``: octaves, chunks, workers),
            asked for by ``config.deep``; False: the render pipeline.
    """

    still: bool
    live: bool
    preview: bool
    pace_fps: float | None
    max_frames: int | None
    total: int | None
    fps: float
    realtime_recording: bool
    dream_every: int
    face_strength: float = 1.0
    frame_cap: int | None = None
    auto_size: bool = False
    deep: bool = False

    @property
    def protects_faces(self) -> bool:
        """Faces are looked for and kept readable in this run (``face_strength`` below 1)."""
        return protecting(self.face_strength)


def check_request(config: RunConfig) -> Look:
    """Checks what can be checked before a camera, a file or TensorFlow is opened.

    The model and its layers, ``--channels``, a ``--guide`` image (decoded here, once), a
    ``--weights`` file, the ``--output`` path (folder, rights, an existing file) and an
    explicit ``--preview``: each fails here in one line, in well under a second, instead of
    after the model has loaded.

    Returns:
        The checked look, for ``resolve_dream`` once the device is known.

    Raises:
        LayerError, WeightsError, SourceError, SinkError, DisplayError: with a one-line reason.
    """
    from livedream.display import check_display
    from livedream.limits import check_request as check_limits
    from livedream.models import check_weights_file
    from livedream.sinks import check_output_path

    saved = config.control.look  # its layers count in --model auto's choice too
    named = () if saved is None else (*(saved.layers or ()), *(n for n, _ in saved.channels or ()))
    look = check_look(config.dream, look_layers=named)
    check_limits(config, look.spec)  # the dream size against the flow, the model and the memory
    if config.control.look is not None:  # --look: its layers and channels against the model
        from livedream.control.looks import check_saved_look

        check_saved_look(config.control.look, look.spec)
    if config.dream.weights is not None:
        # The same check load_model() makes in the dream thread, made early.
        check_weights_file(config.dream.weights)
    if config.output is not None:
        check_output_path(config.output, overwrite=config.overwrite)
    if config.preview:
        check_display()
    return look


def plan_run(config: RunConfig, source: Source) -> RunPlan:
    """Checks that the outputs fit the opened ``source`` and decides how the run goes.

    Raises:
        UsageError: an image output for a video, a video from a photo without --max-frames,
            or nothing at all to show the dream on.
    """
    from livedream.display import has_display
    from livedream.encode import VIDEO_EXTENSIONS

    photo = isinstance(source, ImageSource)
    if is_image_path(config.output):
        if not photo:
            raise SinkError(
                f"--output {config.output} is an image but the input is a video; "
                f"give a video file ({' '.join(VIDEO_EXTENSIONS)})"
            )
        return RunPlan(
            still=True,
            live=False,
            preview=False,
            pace_fps=None,
            max_frames=None,
            total=1,
            fps=source.fps,
            realtime_recording=False,
            dream_every=1,
            face_strength=face_strength(config, live=False),
            frame_cap=1,
        )
    records = config.output is not None
    if photo and records and config.max_frames is None:
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
    # Live: a camera or stream, or anything a person watches as it plays (the preview, the
    # virtual camera), or --realtime. Only a file or photo rendered to a file is not: its
    # queues block, nothing is lost.
    live = source.is_live or preview or config.virtual_cam is not None or config.realtime
    if config.deep is not None:
        check_deep(config, source, live=live)
    total = None
    if not live:
        total = source.frame_count or config.max_frames
        if total is not None and config.max_frames is not None:
            total = min(total, config.max_frames)
    return RunPlan(
        still=False,
        live=live,
        preview=preview,
        pace_fps=source.fps if live and not source.is_live else None,
        max_frames=None if live else config.max_frames,
        total=total,
        fps=source.fps,
        # A camera's recording holds frames to keep real time; a file's keeps its timestamps.
        realtime_recording=source.is_live and records,
        dream_every=1 if live else config.dream_every,
        face_strength=face_strength(config, live=live),
        frame_cap=config.max_frames,
        auto_size=auto_size(config, live=live),
        deep=config.deep is not None,
    )


def check_deep(config: RunConfig, source: Source, *, live: bool) -> None:
    """A deep render takes a video file to a video file, nothing live, every frame dreamed
    whole at one fixed size, with none of the live controls; else one line saying what to drop.

    Raises:
        UsageError: a flag or input the deep render does not take.
    """
    if not isinstance(source, VideoFileSource):
        raise UsageError(f"{DEEP_FLAGS} render a video file; got {source.name}: give --input FILE")
    if config.output is None:
        raise UsageError(f"{DEEP_FLAGS} render to a video file: give --output FILE.mp4")
    if live:
        raise UsageError(
            f"{DEEP_FLAGS} render to a file only: drop --realtime, --preview and --virtual-cam"
        )
    dropped = [
        flag
        for flag, given in (
            ("--dream-every", config.dream_every != 1),
            ("--face-strength", config.face_strength not in (None, 1.0)),
            ("--dream-size auto", bool(config.dream.auto_size)),
            ("--mirror", config.mirror),
            ("--control", config.control.web is not None),
            ("--osc", config.control.osc is not None),
            ("--look", config.control.look is not None),
        )
        if given
    ]
    if dropped:
        raise UsageError(
            f"{DEEP_FLAGS} dream every frame whole, at one size, as the flags say; "
            f"got {', '.join(dropped)}: drop {'it' if len(dropped) == 1 else 'them'}"
        )


def auto_size(config: RunConfig, *, live: bool) -> bool:
    """Whether the dream's size follows the machine: ``--dream-size auto``, or by default in a
    live run (a file render keeps its fixed size, so that renders repeat, unless asked)."""
    if config.dream.auto_size is not None:
        return config.dream.auto_size
    return live and config.dream.dream_size is None


def face_strength(config: RunConfig, *, live: bool) -> float:
    """``--face-strength``, or its default for the run kind: faces kept readable live, files
    rendered to files dreamed whole."""
    if config.face_strength is not None:
        return config.face_strength
    return LIVE_FACE_STRENGTH if live else 1.0
