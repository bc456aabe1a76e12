"""The decisions made at the door, with no TensorFlow: the run plan (still or stream, live or
not, pace, frame total and cap, face strength, preview) and the resolved dream (model, layers,
looks, guide, precision and compile mode)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from livedream.config import LIVE_FACE_STRENGTH, DeepConfig, DreamConfig, RunConfig
from livedream.device import Device
from livedream.errors import LayerError, SinkError, SourceError, UsageError
from livedream.media import Frame
from livedream.models import MODELS
from livedream.plan import RunPlan, check_request, plan_run
from livedream.resolve import check_look, resolve_dream
from livedream.sources import ImageSource, Source


class StubSource(Source):
    """An opened input as the plan sees it: live or not, its fps and frame count."""

    def __init__(self, name: str, *, live: bool, fps: float, frames: int | None) -> None:
        super().__init__(name)
        self.is_live = live
        self.width, self.height, self.fps, self.frame_count = 320, 240, fps, frames

    def _read(self) -> Frame | None:
        return None


def camera() -> Source:
    return StubSource("webcam 0", live=True, fps=30.0, frames=None)


def clip() -> Source:
    return StubSource("clip.mp4", live=False, fps=25.0, frames=250)


def live_url() -> Source:  # an HLS live stream, an MJPEG camera: frames come whatever happens
    return StubSource("http://cam/live.m3u8", live=True, fps=30.0, frames=None)


def file_url() -> Source:  # a video file over HTTP: its frame count is known, it can wait
    return StubSource("http://host/clip.mp4", live=False, fps=24.0, frames=100)


@pytest.fixture
def photo(tmp_path: Path) -> ImageSource:
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), 90, np.uint8))
    return ImageSource(path, fps=5.0)


def plan(
    source: Source, monkeypatch: pytest.MonkeyPatch, *, display: bool = True, **flags: Any
) -> RunPlan:
    """``plan_run`` for ``flags`` (RunConfig fields) where a display does or does not exist."""
    monkeypatch.setattr("livedream.display.has_display", lambda: display)
    return plan_run(RunConfig(**flags), source)


OUT = Path("dream.mp4")
LIVE = LIVE_FACE_STRENGTH

# (what, source, flags, display) -> what the plan decides (fields of RunPlan)
CASES: list[tuple[str, Any, dict[str, Any], bool, dict[str, Any]]] = [
    (
        "camera in a window",
        camera,
        {},
        True,
        {"live": True, "preview": True, "pace_fps": None, "total": None, "frame_cap": None},
    ),
    (
        "camera recorded keeps real time, no window by default",
        camera,
        {"output": OUT},
        True,
        {"live": True, "preview": False, "realtime_recording": True, "face_strength": LIVE},
    ),
    (
        "camera to a virtual camera where no display exists",
        camera,
        {"virtual_cam": ""},
        False,
        {"live": True, "preview": False, "realtime_recording": False},
    ),
    (
        "file to file is a render: nothing lost, every frame counted, faces dreamed whole",
        clip,
        {"output": OUT, "dream_every": 3},
        True,
        {
            "live": False,
            "preview": False,
            "pace_fps": None,
            "total": 250,
            "dream_every": 3,
            "face_strength": 1.0,
        },
    ),
    (
        "file to file, capped",
        clip,
        {"output": OUT, "max_frames": 40},
        True,
        {"live": False, "total": 40, "max_frames": 40, "frame_cap": 40, "face_strength": 1.0},
    ),
    (
        "file shown in a window plays live at its own pace",
        clip,
        {},
        True,
        {"live": True, "preview": True, "pace_fps": 25.0, "total": None, "face_strength": LIVE},
    ),
    (
        "file recorded with the window asked for is live",
        clip,
        {"output": OUT, "preview": True, "dream_every": 3},
        True,
        {"live": True, "preview": True, "pace_fps": 25.0, "dream_every": 1, "max_frames": None},
    ),
    (
        "file to a virtual camera",
        clip,
        {"virtual_cam": "/dev/video9"},
        False,
        {"live": True, "preview": False, "pace_fps": 25.0},
    ),
    (
        "--realtime file to file plays live, its recording keeps the file's timestamps",
        clip,
        {"output": OUT, "realtime": True, "max_frames": 30},
        True,
        {"live": True, "pace_fps": 25.0, "total": None, "max_frames": None, "frame_cap": 30},
    ),
    (
        "a video file over HTTP, to a file, is a render",
        file_url,
        {"output": OUT},
        True,
        {"live": False, "total": 100, "pace_fps": None, "realtime_recording": False},
    ),
    (
        "a live stream to a file stays live",
        live_url,
        {"output": OUT},
        True,
        {"live": True, "total": None, "realtime_recording": True, "face_strength": LIVE},
    ),
    (
        "an explicit face strength wins on a render",
        clip,
        {"output": OUT, "face_strength": 0.5},
        True,
        {"live": False, "face_strength": 0.5},
    ),
    (
        "an explicit face strength wins live",
        camera,
        {"face_strength": 1.0},
        True,
        {"live": True, "face_strength": 1.0},
    ),
    (
        "--no-preview with a file still records",
        camera,
        {"output": OUT, "preview": False},
        True,
        {"live": True, "preview": False},
    ),
]


@pytest.mark.parametrize(
    ("source", "flags", "display", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_plan_of_a_stream(
    source: Any,
    flags: dict[str, Any],
    display: bool,
    expected: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decided = plan(source(), monkeypatch, display=display, **flags)
    assert decided.still is False
    assert {key: getattr(decided, key) for key in expected} == expected


def test_a_photo_to_an_image_is_one_still_dreamed_whole(
    photo: ImageSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = plan(photo, monkeypatch, output=Path("dream.png"))
    assert decided == RunPlan(
        still=True,
        live=False,
        preview=False,
        pace_fps=None,
        max_frames=None,
        total=1,
        fps=5.0,
        realtime_recording=False,
        dream_every=1,
        face_strength=1.0,
        frame_cap=1,
    )


def test_a_photo_to_a_video_is_a_render_of_max_frames(
    photo: ImageSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = plan(photo, monkeypatch, output=OUT, max_frames=10)
    assert (decided.still, decided.live, decided.total, decided.frame_cap) == (False, False, 10, 10)
    shown = plan(photo, monkeypatch, display=True)  # a photo in a window: live, at its pace
    assert (shown.live, shown.preview, shown.pace_fps, shown.total) == (True, True, 5.0, None)


AUTO = DreamConfig(auto_size=True)
FIXED = DreamConfig(dream_size=(160, 120))


@pytest.mark.parametrize(
    ("what", "source", "flags", "auto"),
    [
        ("a camera: the size follows the machine", camera, {}, True),
        ("a camera with a fixed --dream-size keeps it", camera, {"dream": FIXED}, False),
        ("a file shown live follows the machine", clip, {"virtual_cam": ""}, True),
        ("--realtime follows the machine", clip, {"output": OUT, "realtime": True}, True),
        ("a file render keeps its size, so renders repeat", clip, {"output": OUT}, False),
        ("a file render asked for auto", clip, {"output": OUT, "dream": AUTO}, True),
    ],
)
def test_the_dream_size_follows_the_machine_in_live_runs(
    what: str, source: Any, flags: dict[str, Any], auto: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = plan(source(), monkeypatch, **flags)
    assert decided.auto_size is auto, what
    look = check_look(flags.get("dream", DreamConfig()))
    dream = resolve_dream(look, Device("cpu", "test", 2, False), auto_size=decided.auto_size)
    assert dream.size.auto is auto, what


def test_dream_size_and_rate_flags() -> None:
    from livedream.args import parse_args

    config, _ = parse_args(["--dream-size", "auto", "--dream-rate", "4"])
    assert config.dream.auto_size is True and config.dream.dream_rate == 4.0
    config, _ = parse_args(["--dream-size", "320x240"])
    assert config.dream.auto_size is None and config.dream.dream_size == (320, 240)
    for bad in (["--dream-rate", "0"], ["--dream-rate", "31"], ["--dream-size", "big"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


@pytest.mark.parametrize(
    ("source", "flags", "display", "error", "words"),
    [
        pytest.param(
            clip,
            {"output": Path("dream.png")},
            True,
            SinkError,
            ["is an image but the input is a video", ".mp4", ".mkv", ".webm"],
            id="an image output for a video lists every video extension",
        ),
        pytest.param(
            camera,
            {},
            False,
            UsageError,
            ["nothing to show the dream on: no display", "--output FILE or --virtual-cam"],
            id="no display and no output",
        ),
        pytest.param(
            clip,
            {"preview": False},
            True,
            UsageError,
            ["the preview is off (--no-preview)", "--output FILE or --virtual-cam"],
            id="--no-preview and no output",
        ),
    ],
)
def test_plans_that_cannot_run_say_why(
    source: Any,
    flags: dict[str, Any],
    display: bool,
    error: type[Exception],
    words: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(error) as raised:
        plan(source(), monkeypatch, display=display, **flags)
    for word in words:
        assert word in str(raised.value)


def test_a_video_from_a_photo_needs_max_frames(
    photo: ImageSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError, match="is a photo: a video from it needs --max-frames N"):
        plan(photo, monkeypatch, output=OUT)


# --- the resolved dream ----------------------------------------------------------------------

CPU_BF16 = Device("cpu", "a CPU with AMX", 2, True)
CPU_PLAIN = Device("cpu", "a CPU without bfloat16", 2, False)
GPU = Device("gpu", "a GPU", 1, True)


@pytest.mark.parametrize(
    ("precision", "compile_mode", "device", "expected"),
    [
        ("auto", "auto", CPU_BF16, ("bfloat16", "graph")),
        ("auto", "auto", CPU_PLAIN, ("float32", "graph")),
        ("auto", "auto", GPU, ("float16", "xla")),
        ("float32", "eager", CPU_BF16, ("float32", "eager")),
        ("float16", "xla", CPU_PLAIN, ("float16", "xla")),
    ],
)
def test_precision_and_compile_mode_are_decided_for_the_device(
    precision: str, compile_mode: str, device: Device, expected: tuple[str, str]
) -> None:
    config = DreamConfig(precision=precision, compile=compile_mode)
    dream = resolve_dream(check_look(config), device)
    assert (dream.precision, dream.compile_mode) == expected
    assert dream.device == device


def test_the_model_default_layers_and_looks() -> None:
    look = check_look(DreamConfig())
    spec = MODELS["vgg16_hed"]
    assert look.spec is spec
    assert look.layers == spec.default_layers
    assert look.layer_presets == spec.presets
    assert look.channels == ()
    assert [name for name, _ in look.channel_presets] == [p.name for p in spec.channel_presets]
    assert look.guide is None and look.guide_name is None
    assert look.size.size_for(640, 480) == (320, 240)


def test_chosen_layers_and_channels_come_first_in_the_cycles() -> None:
    look = check_look(DreamConfig(layers=("block2_conv2",), channels=(("", (3, 1, 3)),)))
    assert look.layers == ("block2_conv2",)
    assert look.layer_presets[0] == ("block2_conv2",)
    assert look.layer_presets[1:] == MODELS["vgg16_hed"].presets
    assert look.channels == (("block2_conv2", (1, 3)),)
    assert look.channel_presets[0] == ("--channels", (("block2_conv2", (1, 3)),))
    preset = MODELS["vgg16_hed"].presets[1]  # a preset is not listed twice
    assert check_look(DreamConfig(layers=preset)).layer_presets == MODELS["vgg16_hed"].presets


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (
            DreamConfig(model="vgg16_hed", layers=("mixed3",)),
            ["no layer 'mixed3'", "block5_conv3", "(--layers A,B)"],
        ),
        (
            DreamConfig(layers=("block3_conv3",), channels=(("", (256,)),)),
            ["block3_conv3 of vgg16_hed has 256 channels, got channel 256", "from 0 to 255"],
        ),
        (
            DreamConfig(layers=("block3_conv3", "block4_conv3"), channels=(("", (1,)),)),
            ["names no layer but 2 layers are dreamed", "--channels block4_conv3:12,77"],
        ),
    ],
)
def test_a_look_the_model_cannot_dream_fails_at_the_door(
    config: DreamConfig, words: list[str]
) -> None:
    with pytest.raises(LayerError) as raised:
        check_request(RunConfig(dream=config))
    for word in words:
        assert word in str(raised.value)


def test_the_guide_is_decoded_at_the_door(tmp_path: Path) -> None:
    guide = tmp_path / "motif.png"
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    cv2.imwrite(str(guide), pixels)
    look = check_request(RunConfig(dream=DreamConfig(guide=guide)))
    assert look.guide_name == "motif.png"
    assert look.guide is not None and np.array_equal(look.guide, pixels)
    dream = resolve_dream(look, CPU_PLAIN)
    assert dream.guide is look.guide  # the same pixels travel on, never decoded again
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(SourceError, match=r"^--guide: \S*notes\.png is not an image"):
        check_request(RunConfig(dream=DreamConfig(guide=tmp_path / "notes.png")))


def test_more_than_100_steps_a_frame_take_a_deep_render() -> None:
    """Up to the seed's 250 steps a frame in a deep render (its steps run in short calls); a
    render or live run, which runs a frame's steps in one call, is told what to add."""
    deep = check_request(RunConfig(dream=DreamConfig(steps=250), deep=DeepConfig()))
    assert deep.settings.steps == 250
    check_request(RunConfig(dream=DreamConfig(steps=100)))  # the most in one call
    with pytest.raises(UsageError) as raised:
        check_request(RunConfig(dream=DreamConfig(steps=101), output=Path("out.mp4")))
    assert str(raised.value) == (
        "more than 100 steps a frame take a deep render (a video file to a video file, its "
        "steps run in short calls); got --steps 101 without one: add --chunk-frames 120, or "
        "give --steps 100 or fewer"
    )


def test_tuned_changes_numbers_only() -> None:
    dream = resolve_dream(check_look(DreamConfig(dream_size=(64, 48))), CPU_PLAIN)
    tuned = dream.tuned(blend=0.0, dream_size=(80, 56))
    assert tuned.settings == replace(dream.settings, blend=0.0, dream_size=(80, 56))
    assert tuned.size.size_for(640, 480) == (80, 56)
    assert (tuned.layers, tuned.precision) == (dream.layers, dream.precision)


def test_planning_imports_no_tensorflow() -> None:
    """The door answers in well under a second because TensorFlow is not started for it."""
    code = (
        "import sys\n"
        "from livedream.config import RunConfig\n"
        "from livedream.device import Device\n"
        "from livedream.plan import check_request\n"
        "from livedream.resolve import resolve_dream\n"
        "look = check_request(RunConfig())\n"
        "resolve_dream(look, Device('cpu', 'x', 2, False))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
