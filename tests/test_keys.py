"""The preview keys the other tests leave out: the shifted and capital keys, the limits, ``c``
moving the dream onto its layer, ``k`` back on, a key that means nothing, and in a real window
(Xvfb) Esc ending the preview and a screenshot that cannot be written.

The keys that change the dream itself are checked on the picture in ``test_cli.py`` (a real
process) and ``test_pipeline.py``; here the notes are what the user reads in the log, and the
``Controls`` what the dream thread applies before its next frame.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import XScreen

from livedream.controls import MAX_STEP_SIZE, MAX_STEPS, MIN_STEP_SIZE, Controls
from livedream.models import MODELS
from livedream.preview import KEY_ESC, KEYS_HELP, KeyHandler, PreviewWindow

SPEC = MODELS["vgg16_hed"]
LOOKS = [(preset.name, preset.selection) for preset in SPEC.channel_presets]


def controls(**changes: object) -> Controls:
    """The live settings of a vgg16_hed run on block3_conv3, with ``changes``."""
    base = Controls(steps=2, step_size=0.01, flow=True, layers=("block3_conv3",))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def keys_for(c: Controls) -> KeyHandler:
    return KeyHandler(c, SPEC.presets, channel_presets=LOOKS)


def press(keys: KeyHandler, key: str | int) -> str | None:
    return keys.handle(key if isinstance(key, int) else ord(key))


# --- what the handler does ----------------------------------------------------------------


def test_every_key_the_help_names_answers_with_a_note() -> None:
    """What the startup line promises: each key it names does something and says what."""
    c = controls(has_guide=True, guide=True, face_strength=0.3)
    keys = keys_for(c)
    named = {"q": "q", "Esc": KEY_ESC, "space": " ", "+": "+", "-": "-", "[": "[", "]": "]"}
    for word in ("l", "c", "g", "f", "r", "m", "k", "s", "h"):
        named[word] = word
    for name in named:
        assert f"{name} " in KEYS_HELP or f"{name}/" in KEYS_HELP or f"/{name}" in KEYS_HELP, name
    for name, key in named.items():
        assert press(keys, key), f"{name} said nothing"


@pytest.mark.parametrize("key", ["q", "Q", KEY_ESC])
def test_q_capital_q_and_esc_each_quit(key: str | int) -> None:
    c = controls()
    keys = keys_for(c)
    assert press(keys, key) == "quit"
    assert keys.quit


def test_plus_and_underscore_work_like_equal_and_minus() -> None:
    """``+`` is ``=`` with shift, ``_`` is ``-`` with shift: a user holding shift gets the same."""
    c = controls()
    keys = keys_for(c)
    assert press(keys, "+") == "strength 0.0125"
    assert c.step_size == pytest.approx(0.0125)
    assert press(keys, "_") == "strength 0.0100"
    assert c.step_size == pytest.approx(0.01)


def test_strength_and_steps_stop_at_their_limits_and_say_so() -> None:
    c = controls()
    keys = keys_for(c)
    notes = [press(keys, "+") for _ in range(40)]
    assert c.step_size == MAX_STEP_SIZE
    assert notes[-1] == notes[-2] == f"strength {MAX_STEP_SIZE:.4f}"
    for _ in range(80):
        press(keys, "-")
    assert c.step_size == MIN_STEP_SIZE
    for _ in range(2 * MAX_STEPS):
        press(keys, "]")
    assert c.steps == MAX_STEPS and press(keys, "]") == f"steps {MAX_STEPS}"
    for _ in range(2 * MAX_STEPS):
        press(keys, "[")
    assert c.steps == 1 and press(keys, "[") == "steps 1"


def test_c_moves_the_dream_onto_the_looks_layer_and_l_goes_on_from_there() -> None:
    c = controls()  # dreaming block3_conv3; every look of vgg16_hed is on block4_conv3
    keys = keys_for(c)
    name, selection = LOOKS[0]
    ((layer, channels),) = selection
    assert layer not in c.layers
    note = press(keys, "c")
    numbers = ",".join(map(str, channels))
    assert note == f"channels {name} ({layer}:{numbers}), layers {layer}"
    assert c.layers == (layer,) and c.channels == selection
    # The next look is on the same layer: the layers stay, only the channels change.
    assert press(keys, "c") == f"channels {LOOKS[1][0]} ({layer}:{LOOKS[1][1][0][1][0]})"
    assert c.layers == (layer,)
    # `l` goes on from the preset the dream is on now, not from where it started.
    index = SPEC.presets.index((layer,))
    following = SPEC.presets[(index + 1) % len(SPEC.presets)]
    assert press(keys, "l") == f"layers {','.join(following)}"
    assert c.layers == following


def test_c_ends_its_cycle_on_every_channel() -> None:
    c = controls()
    keys = keys_for(c)
    for _ in LOOKS:
        press(keys, "c")
    assert press(keys, "c") == "all channels"
    assert c.channels == ()
    name, (((layer, channels),)) = LOOKS[0]  # and round again
    assert press(keys, "c") == f"channels {name} ({layer}:{','.join(map(str, channels))})"


def test_k_turns_face_protection_off_and_back_on() -> None:
    c = controls(face_strength=0.3)
    keys = keys_for(c)
    assert press(keys, "k") == "face protection off"
    assert c.kept_on_faces == 1.0
    assert press(keys, "k") == "face protection on"
    assert c.kept_on_faces == 0.3


@pytest.mark.parametrize("key", ["x", "1", "\t", 200])
def test_a_key_that_means_nothing_changes_nothing(key: str | int) -> None:
    c = controls(has_guide=True, guide=True, face_strength=0.3)
    keys = keys_for(c)
    before = dataclasses.replace(c)
    assert press(keys, key) is None
    assert c == before
    assert not keys.quit and not keys.screenshot and not keys.hud


def test_l_and_c_say_nothing_when_there_is_nothing_to_cycle() -> None:
    c = controls()
    keys = KeyHandler(c, [])
    assert press(keys, "l") is None
    assert press(keys, "c") is None
    assert c.layers == ("block3_conv3",) and c.channels == ()


# --- in a real window -----------------------------------------------------------------------


def pump(window: PreviewWindow, frame: np.ndarray, until: Callable[[], bool]) -> None:
    """Shows ``frame`` as the run does (keys handled) until ``until()`` holds."""
    deadline = time.monotonic() + 60.0
    while not until():
        assert time.monotonic() < deadline, "the window never got there"
        window.write(frame)


def press_in(
    x_screen: XScreen, window: PreviewWindow, title: str, key: str, arrived: Callable[[], bool]
) -> None:
    """Presses ``key`` on the window until ``arrived()`` (an X key press can be lost while a
    just-mapped window takes focus: pressed again only after a wait for it to arrive)."""
    frame = np.full((90, 120, 3), 120, np.uint8)
    pump(window, frame, lambda: x_screen.find_window(title) is not None)
    for _ in range(3):
        x_screen.press_key(key, window_title=title)
        deadline = time.monotonic() + 10.0  # arrived long before, unless lost
        while time.monotonic() < deadline:
            window.write(frame)
            if arrived():
                return
    raise AssertionError(f"key {key!r} never arrived")


def test_esc_in_the_window_ends_the_preview(x_screen: XScreen) -> None:
    title = "livedream test esc"
    with PreviewWindow(title, keys=keys_for(controls())) as window:
        assert not window.wants_stop
        press_in(x_screen, window, title, "Escape", lambda: window.wants_stop)
        assert window.is_open()  # the run closes it, not the key


def test_a_screenshot_that_cannot_be_written_warns_and_the_preview_goes_on(
    x_screen: XScreen,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)  # the working folder is deleted under the run: no file can go there
    title = "livedream test shot"
    c = controls()
    with (
        caplog.at_level(logging.INFO, logger="livedream"),
        PreviewWindow(title, keys=keys_for(c)) as window,
    ):
        press_in(x_screen, window, title, "s", lambda: "screenshot" in caplog.text)
        assert not window.wants_stop and window.is_open()
        # The keys still work after it.
        press_in(x_screen, window, title, "m", lambda: c.mirror)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "could not write the screenshot" in warnings[0].getMessage()
    assert "is the folder writable?" in warnings[0].getMessage()
