"""Every live setting the page, the JSON API, OSC and looks may change, and its checks.

A value is checked for type and range before anything changes; a bad one raises ``BadValue``
with a one-line reason (expected / got) and leaves every setting as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from livedream.config import MAX_DREAM_RATE, MIN_DREAM_RATE
from livedream.controls import MAX_STEP_SIZE, MAX_STEPS, MIN_STEP_SIZE


class BadValue(ValueError):
    """A value of the wrong type or out of range; the message is one line."""


@dataclass(frozen=True)
class Setting:
    """One live setting as the outside sees it.

    Attributes:
        name: its name in the JSON API, OSC and looks.
        kind: ``bool``, ``int``, ``float`` or ``str`` (a choice among ``options``).
        low, high: the range of a number, both included.
        help: what it does, for the page.
    """

    name: str
    kind: type
    low: float = 0.0
    high: float = 0.0
    help: str = ""


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("dream", bool, help="dream on / off"),
        Setting("steps", int, 1, MAX_STEPS, "gradient steps per keyframe"),
        Setting("strength", float, MIN_STEP_SIZE, MAX_STEP_SIZE, "share of 0..255 per step"),
        Setting("blend", float, 0.0, 1.0, "share of the dream carried on (0: none)"),
        Setting("flow", bool, help="carry the dream along the motion"),
        Setting("mirror", bool, help="flip left-right"),
        Setting("faces", bool, help="face protection on / off"),
        Setting("face_strength", float, 0.0, 1.0, "share of the dream kept on faces"),
        Setting("guide", bool, help="dream toward the guide image"),
        Setting("layers", str, help="layer preset"),
        Setting("channels", str, help="channel preset"),
        Setting("dream_rate", float, MIN_DREAM_RATE, MAX_DREAM_RATE, "keyframes a second aimed at"),
        Setting("dream_size", str, help="dream size; auto follows the machine"),
    )
}


def _number_text(value: float) -> str:
    return f"{value:g}"


def check_value(name: str, value: object, choices: tuple[str, ...] = ()) -> object:
    """``value`` as the setting ``name`` takes it; ``choices``: the allowed strings.

    Booleans are JSON ``true``/``false`` only; a whole number is taken for a decimal one, never
    a boolean for a number.

    Raises:
        BadValue: an unknown name, the wrong type or out of range (one line).
    """
    setting = SETTINGS.get(name)
    if setting is None:
        raise BadValue(f"unknown setting {name!r}: expected one of {', '.join(SETTINGS)}")
    kind = setting.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise BadValue(f"{name}: expected true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str) or value not in choices:
            raise BadValue(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = "a whole number" if kind is int else "a number"
        raise BadValue(f"{name}: expected {what}, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise BadValue(f"{name}: expected a whole number, got {value!r}")
    if not math.isfinite(value) or not setting.low <= value <= setting.high:
        raise BadValue(
            f"{name}: expected a number from {_number_text(setting.low)} to "
            f"{_number_text(setting.high)}, got {value!r}"
        )
    return int(value) if kind is int else float(value)
