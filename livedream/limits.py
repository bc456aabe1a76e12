"""What each setting really takes, checked at the door: flag ranges, dream sizes, memory.

Every check here runs before TensorFlow is imported and fails in one line (a ``UsageError``,
exit code 2) instead of a crash minutes later:

- the range of every numeric flag (``args.py`` reads them from here);
- the dream size against what the optical flow (OpenCV's DIS) and the model's layers accept;
- the run's estimated peak memory against what the machine has free.

    check_request(config)                      # the flags alone (plan.check_request)
    check_frames(config, 1920, 1080, still=False)  # with the input's size (plan.plan_run)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from livedream.config import DreamConfig, RunConfig
from livedream.errors import UsageError
from livedream.media import is_image_path
from livedream.models import ModelSpec

logger = logging.getLogger(__name__)

# Flag ranges (inclusive) that work end to end.
FPS_RANGE = (1.0, 240.0)  # below 1 the file clocks break down; above 240 no camera delivers
STEPS_RANGE = (1, 250)  # per frame: the seed's deepest videos took 250
# Steps a frame outside a deep render, which runs a frame's steps in one compiled call: 100 is
# already minutes a frame at 320x240 on a slow CPU. A deep render runs them in calls of <= 1 s.
STEPS_IN_ONE_CALL = 100
OCTAVE_STEPS_RANGE = (1, 1000)  # per octave of a photo: run in short calls, Ctrl-C stays quick
OCTAVES_RANGE = (1, 16)  # 1.3^15 = 51: every octave past ~12 is already at the smallest size
OCTAVE_SCALE_RANGE = (1.0, 4.0)  # above 1 (octaves grow); at 4 a 3rd octave is 1/16 of the size
CHUNK_FRAMES_RANGE = (1, 100_000)  # a deep render's chunk: above ~1 h of video nothing resumes
WORKERS_RANGE = (1, 4096)  # a deep render's Ray workers: one a core of a large cluster
STEP_SIZE_MAX = 1.0  # a share of the 0..255 range per step: above 1 is past white
MAX_FRAMES_MAX = 10**9  # a year of 30 fps
DREAM_EVERY_MAX = 10_000
SIDE_RANGE = (16, 8192)  # --dream-size, --width, --height
SEED_RANGE = (-(2**31), 2**31 - 1)  # the dream's jitter seed is an int32

# OpenCV's DIS optical flow (ultrafast preset) raises below 8 px a side, and below 12 px on the
# longer side (found by calling it on every size from 1x1 to 20x4000). The dream keeps 16 px a
# side; its flow check runs at most FLOW_WIDTH wide, so the long side stays within MAX_ASPECT
# times the short (320 / 20 = 16 px high at the least).
MIN_DREAM_SIDE = 16
MAX_ASPECT = 20

# The memory estimate (bytes). Measured with ru_maxrss on a VGG16 dream step, float32, graph
# mode: 3.4-3.6 kB per dream pixel at 640x480 whatever the layer (the activations of the first
# blocks and their gradients dominate); TensorFlow and a model's weights add up to ~1 GB.
DREAM_BYTES_PER_PIXEL = 4096
RUNTIME_BYTES = 1 << 30
QUEUED_FRAMES = 16  # frames held at once in a live run: the queues (8 + 4), in flight, encoder
FULL_SIZE_FLOATS = 3  # float32 full-size copies per composited frame: upscaled dream, sum, clip
STILL_FLOATS = 4  # a photo's: the base, the upscaled detail, their sum, the clip
STILL_MAX_SIDE = 1280  # dream_image's largest octave
STILL_MIN_SIDE = 256  # a photo's largest octave is never made smaller than this to save memory
MEMORY_SHARE = 0.75  # refuse a run whose estimate passes this share of the available memory
MEMINFO = Path("/proc/meminfo")  # where MemAvailable is read (Linux); tests point it elsewhere
GB = 1e9


def range_error(low: float, high: float, got: object) -> str:
    return f"expected a number from {low:g} to {high:g}, got {got}"


def reachable_layers(dream: DreamConfig, spec: ModelSpec) -> tuple[str, ...]:
    """Every layer a run may dream: the chosen ones and those the preview's keys switch to."""
    layers = set(dream.layers or spec.default_layers)
    for preset in spec.presets:
        layers.update(preset)
    layers.update(preset.layer for preset in spec.channel_presets)
    return tuple(sorted(layers))


def _at_least(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled up, aspect kept, until the short side is ``side`` (even sizes)."""
    scale = side / min(width, height)
    return 2 * math.ceil(width * scale / 2), 2 * math.ceil(height * scale / 2)


def check_dream_size(
    width: int, height: int, dream: DreamConfig, spec: ModelSpec, *, what: str
) -> None:
    """Raises ``UsageError`` when a (width, height) dream is below what the flow or ``spec``'s
    model takes; ``what`` begins the message (``--dream-size 40x30 is``)."""
    layers = reachable_layers(dream, spec)
    need = spec.min_side(layers)
    short, long = min(width, height), max(width, height)
    if short < MIN_DREAM_SIDE:
        w, h = _at_least(width, height, MIN_DREAM_SIDE)
        raise UsageError(
            f"{what} below the {MIN_DREAM_SIDE} px a side the optical flow needs; give "
            f"--dream-size {min(w, SIDE_RANGE[1])}x{min(h, SIDE_RANGE[1])} or larger"
        )
    if long > MAX_ASPECT * short:
        fit = MAX_ASPECT * short
        w, h = (fit, short) if width >= height else (short, fit)
        raise UsageError(
            f"{what} {long / short:.0f} times as {'wide' if width >= height else 'tall'} as it "
            f"is {'high' if width >= height else 'wide'}; the optical flow takes at most "
            f"{MAX_ASPECT} times: give --dream-size {w}x{h}"
        )
    if short < need:
        w, h = _at_least(width, height, need)
        deepest = max(layers, key=lambda layer: (spec.min_side((layer,)), spec.layers.index(layer)))
        raise UsageError(
            f"{what} too small for --model {spec.name}: its layers up to {deepest} (the ones "
            f"dreamed and those the l key switches to) need {need} px a side; give "
            f"--dream-size {w}x{h} or larger"
        )


def available_memory(meminfo: Path | None = None) -> int | None:
    """MemAvailable in bytes from ``meminfo`` (``MEMINFO``), or None where there is none."""
    try:
        text = (meminfo or MEMINFO).read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the kernel says kB
    return None


def peak_memory(width: int, height: int, dream: tuple[int, int], *, still: bool) -> int:
    """Estimated peak bytes of a run on ``width`` x ``height`` frames dreamed at ``dream``.

    A live run or render holds ``QUEUED_FRAMES`` uint8 frames and ``FULL_SIZE_FLOATS``
    float32 full-size copies while compositing; a photo ``STILL_FLOATS`` float32 copies. The
    dream step costs ``DREAM_BYTES_PER_PIXEL`` per dream pixel.
    """
    pixels = width * height
    dream_pixels = dream[0] * dream[1]
    if still:
        full = STILL_FLOATS * pixels * 3 * 4
    else:
        full = QUEUED_FRAMES * pixels * 3 + FULL_SIZE_FLOATS * pixels * 3 * 4
    return RUNTIME_BYTES + full + dream_pixels * DREAM_BYTES_PER_PIXEL


def _too_big(need: int, available: int | None) -> bool:
    return available is not None and need > MEMORY_SHARE * available


def _refusal(what: str, need: int, available: int, todo: str) -> UsageError:
    return UsageError(
        f"{what} about {need / GB:.1f} GB of memory, more than {MEMORY_SHARE:.0%} of the "
        f"{available / GB:.1f} GB available; {todo}"
    )


def check_memory(
    width: int, height: int, dream: tuple[int, int], *, still: bool, what: str
) -> None:
    """Raises ``UsageError`` when the estimated peak passes ``MEMORY_SHARE`` of MemAvailable."""
    available = available_memory()
    need = peak_memory(width, height, dream, still=still)
    if available is not None and _too_big(need, available):
        raise _refusal(
            what,
            need,
            available,
            "dream smaller (--dream-size), give a smaller input (ffmpeg -i IN -vf scale=1920:-2 "
            "OUT) or free some memory",
        )


def still_dream_size(width: int, height: int, max_side: int = STILL_MAX_SIDE) -> tuple[int, int]:
    """The largest octave of a photo (``dream_image`` caps its long side at ``max_side``)."""
    top = min(1.0, max_side / max(width, height))
    return max(1, round(width * top)), max(1, round(height * top))


def _still_side(width: int, height: int, available: int | None) -> int:
    side = STILL_MAX_SIDE
    while side > STILL_MIN_SIDE and _too_big(
        peak_memory(width, height, still_dream_size(width, height, side), still=True), available
    ):
        side = max(STILL_MIN_SIDE, int(side * 0.8))
    return side


def still_max_side(width: int, height: int) -> int:
    """The largest octave's long side for a ``width`` x ``height`` photo: ``STILL_MAX_SIDE``,
    or smaller (down to ``STILL_MIN_SIDE``, with a warning) where the memory estimate would
    pass ``MEMORY_SHARE`` of the available memory. The dream is upscaled to the full photo."""
    side = _still_side(width, height, available_memory())
    usual = min(STILL_MAX_SIDE, max(width, height))
    if side < usual:
        logger.warning(
            "dreaming the photo at %d px on its long side instead of %d to fit in the free "
            "memory; its dream is scaled up to %dx%d",
            side,
            usual,
            width,
            height,
        )
    return side


def check_request(config: RunConfig, spec: ModelSpec) -> None:
    """The flags alone: ``--steps`` above ``STEPS_IN_ONE_CALL`` outside a deep render, and an
    explicit ``--dream-size`` for a video (a photo to an image is dreamed at its own size)
    against the flow, ``spec``'s model and the memory."""
    if is_image_path(config.output):
        return
    steps = config.dream.steps
    if steps > STEPS_IN_ONE_CALL and config.deep is None:
        raise UsageError(
            f"more than {STEPS_IN_ONE_CALL} steps a frame take a deep render (a video file to "
            f"a video file, its steps run in short calls); got --steps {steps} without one: "
            f"add --chunk-frames 120, or give --steps {STEPS_IN_ONE_CALL} or fewer"
        )
    if config.dream.dream_size is None:
        return
    w, h = config.dream.dream_size
    check_dream_size(w, h, config.dream, spec, what=f"--dream-size {w}x{h} is")
    check_memory(w, h, (w, h), still=False, what=f"a dream of {w}x{h} needs")


def check_frames(
    config: RunConfig, spec: ModelSpec, width: int, height: int, *, still: bool
) -> None:
    """The opened input's ``width`` x ``height`` frames: the dream size they give and the run's
    memory. A photo to an image has no dream size to check (``dream_image`` keeps its smallest
    octave within the model's) and is dreamed smaller where memory is short, down to
    ``STILL_MIN_SIDE``: refused only below that."""
    if still:  # a photo too big for the memory is dreamed smaller (still_max_side)...
        available = available_memory()
        dream = still_dream_size(width, height, _still_side(width, height, available))
        need = peak_memory(width, height, dream, still=True)
        if available is not None and _too_big(need, available):  # ...down to a point
            raise _refusal(
                f"a {width}x{height} photo needs, even dreamed at {STILL_MIN_SIDE} px,",
                need,
                available,
                "give a smaller photo or free some memory",
            )
        return
    dream = config.dream.size.size_for(width, height)
    if config.dream.dream_size is None:
        what = f"the input's {width}x{height} frames give a dream of {dream[0]}x{dream[1]},"
        check_dream_size(*dream, config.dream, spec, what=what)
    what = f"{width}x{height} frames dreamed at {dream[0]}x{dream[1]} need"
    check_memory(width, height, dream, still=False, what=what)
