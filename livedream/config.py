"""Settings, as frozen dataclasses built once by the CLI and passed down explicitly.

Each default carries its reason. ``DreamConfig`` is the engine's; ``RunConfig`` is the whole
run's (source, sinks, pacing) and holds a ``DreamConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from livedream.control.config import ControlConfig

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Share of the dream kept on faces in a live run: the face stays recognisable on a call while
# still part of the picture; files rendered to files keep all of it (1) unless asked.
LIVE_FACE_STRENGTH = 0.35


def protecting(strength: float) -> bool:
    """Whether faces are protected at all at ``strength`` (the share of the dream kept on
    them): at 1 nothing face-related runs and the output is the unprotected one, bit for bit."""
    return strength < 1.0


COMPILE_MODES = ("auto", "graph", "xla", "eager")
# Dreams a second the automatic dream size holds in a live run: the dream's refresh rate, not
# its size, decides how much of it survives on a moving picture (README, "The dream size").
DREAM_RATE = 6.0
MIN_DREAM_RATE, MAX_DREAM_RATE = 0.5, 30.0  # --dream-rate's range: up to a camera's rate


@dataclass(frozen=True)
class DreamSize:
    """The dream-size policy: a ``fixed`` (w, h); the frame's aspect with ``short_side``; or
    ``auto``: the largest size whose dream refreshes ``rate`` times a second here
    (``livedream.dreamsize``), decided as the run goes."""

    fixed: tuple[int, int] | None = None
    short_side: int = 240
    auto: bool = False
    rate: float = DREAM_RATE

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The dream size (w, h) for a frame of ``width`` x ``height`` (``auto``: where it
        starts, ``short_side``; the dream thread's ``DreamSizer`` moves it)."""
        if self.fixed is not None:
            return self.fixed
        scale = self.short_side / min(width, height)
        if scale >= 1.0:
            return width, height
        # Even sizes keep the pooling pyramid aligned and the video encoders happy.
        w = max(2, round(width * scale / 2) * 2)
        h = max(2, round(height * scale / 2) * 2)
        return w, h


@dataclass(frozen=True)
class DreamConfig:
    """How frames are dreamed.

    ``step_size`` is a fraction of the full 0..255 pixel range moved per step by a gradient of
    unit standard deviation, so it means the same for every model whatever its preprocessing.
    """

    # auto: the seed's inception_v3 (~2.9x cheaper a step) where its weights are on this
    # machine, else the bundled vgg16_hed, which works offline (livedream.resolve.choose_model)
    model: str = "auto"
    model_why: str = ""  # why auto chose ``model`` (set by choose_model); "" = named by the user
    weights: Path | None = None  # a local .h5 / .weights.h5 instead of the model's own
    layers: tuple[str, ...] = ()  # () = the model's default layers
    # (layer, channel numbers): dream only those channels; a layer "" = the one dreamed layer
    channels: tuple[tuple[str, tuple[int, ...]], ...] = ()
    guide: Path | None = None  # an image whose motifs the dream looks for (guided dreaming)
    steps: int = 2  # per frame: the temporal carry deepens the dream over frames
    step_size: float = 0.012  # ~3 grey levels per step: visible in a second, not a smear
    dream_size: tuple[int, int] | None = None  # (w, h); None = keep aspect, short side below
    # File renders: 320x240 for a 4:3 clip (1.7-2.2 dreams a second on 2 Zen 4 cores, 6 with AMX).
    short_side: int = 240
    # --dream-size auto: the size follows the machine; None = the run kind's (auto for a live
    # run without a fixed --dream-size, the short side for a file render: run plan decides).
    auto_size: bool | None = None
    dream_rate: float = DREAM_RATE  # dreams a second the automatic size holds
    blend: float = 0.92  # share of the carried dream kept each frame; 0 = no carry
    flow: bool = True  # warp the carried dream with optical flow (off = carry in place)
    jitter: int = 16  # max random roll in pixels per step, against grid artifacts
    octaves: int = 4  # still images: scales dreamed from small to full
    octave_scale: float = 1.3  # the TensorFlow tutorial's ratio between octaves
    octave_steps: int = 10  # still images: steps per octave
    precision: str = "auto"  # auto | float32 | bfloat16 | float16
    compile: str = "auto"  # auto | graph | xla | eager
    seed: int = 0  # same seed, same input: same output

    @property
    def size(self) -> DreamSize:
        """The dream-size policy these settings ask for."""
        return DreamSize(
            self.dream_size, self.short_side, auto=bool(self.auto_size), rate=self.dream_rate
        )


@dataclass(frozen=True)
class DeepConfig:
    """A deep render of a video file (``livedream.deep``): octaves, chunks, workers.

    A video render is deep when any of ``--octaves``, ``--chunk-frames``, ``--workers`` or
    ``--cluster`` is given; otherwise it runs through the render pipeline as before.
    """

    octaves: int = 1  # videos: one scale unless asked (today's renders do not change)
    octave_steps: int | None = None  # per octave; None: --steps shared out over the octaves
    # (the ratio between octaves is the dream's own ``octave_scale``, as for a photo)
    chunk_frames: int = 120  # kept frames per chunk: ~5 s of 25 fps video, minutes of work
    warmup: int = 24  # frames dreamed before a chunk's first kept one: 0.92**24 ~ 0.14 left
    workers: int = 1  # processes dreaming chunks on this machine (Ray when > 1)
    cluster: str | None = None  # a Ray cluster's address; None: this machine


@dataclass(frozen=True)
class RunConfig:
    """One run of the tool: where frames come from, where they go, and how they are dreamed."""

    input: str = "0"  # webcam index, device path, video file or image
    output: Path | None = None  # video file (or image for a still input)
    preview: bool | None = None  # None = on for live sources when a display exists
    virtual_cam: str | None = None  # None = off; "" = first free device; else a device path
    width: int | None = None  # requested camera size; None = the camera's own
    height: int | None = None
    fps: float | None = None  # requested camera fps, or the pace of a still image shown live
    mirror: bool = False
    max_frames: int | None = None  # stop after this many output frames
    overwrite: bool = False
    quality: int = 23  # video files: x264's CRF scale, 0 best .. 51 smallest; 23 is its default
    realtime: bool = False  # play a video file at its own fps as if it were a camera
    dream_every: int = 1  # file renders: dream every Nth frame, composite the rest
    hud: bool = False  # heads-up overlay with fps and latency in the preview
    face_strength: float | None = None  # share of the dream on faces; None = the run kind's
    verbose: bool = False
    demo: bool = False  # --demo: the end says what to try next
    dream: DreamConfig = field(default_factory=DreamConfig)
    control: ControlConfig = field(default_factory=ControlConfig)  # --control, --osc, --look
    deep: DeepConfig | None = None  # a deep render of a video file; None: the render pipeline
