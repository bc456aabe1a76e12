"""The command line's parser class, help formatter and value checks (argparse types).

Shared with ``benchmarks/fps.py`` and ``scripts/soak.py`` (through ``livedream.args``). A bad
value is one line and exit code 2; the ranges come from ``livedream.limits``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from livedream.config import MAX_DREAM_RATE, MIN_DREAM_RATE
from livedream.runtime import EXIT_USAGE
from livedream.urls import mask_passwords, url_scheme
from livedream.weights import KERAS_WEIGHTS


class OneLineParser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit code 2, not argparse's usage dump.

    Shared with ``benchmarks/fps.py`` and ``scripts/soak.py``, with the value checks below.
    """

    def error(self, message: str) -> NoReturn:
        # A URL given where no flag takes it comes back in the message: hide its secrets.
        self.exit(EXIT_USAGE, f"error: {mask_passwords(message)} (see {self.prog} --help)\n")


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


def int_in(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high`` (an argparse type)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low} to {high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low} to {high}, got {value}"
            )
        return value

    return parse


def float_in(low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """A number from ``low`` (above it when ``above``) to ``high`` (an argparse type)."""
    span = f"above {low:g} up to {high:g}" if above else f"from {low:g} to {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {span}, got {text!r}") from None
        if not (low < value if above else low <= value) or not value <= high:
            raise argparse.ArgumentTypeError(f"expected a number {span}, got {text}")
        return value

    return parse


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


def dream_size_arg(text: str) -> tuple[int, int] | str:
    """``--dream-size``: ``auto`` or WIDTHxHEIGHT."""
    if text.strip().lower() == "auto":
        return "auto"
    return size_arg(text)


# ``--dream-rate``: dreams a second, up to a camera's rate (the control page takes the same).
dream_rate_arg = float_in(MIN_DREAM_RATE, MAX_DREAM_RATE)


def quality_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 51, got {text!r}"
        ) from None
    if not 0 <= value <= 51:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 51, got {value}")
    return value


def layers_arg(text: str) -> tuple[str, ...]:
    layers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not layers:
        raise argparse.ArgumentTypeError(f"expected layer names like block4_conv3, got {text!r}")
    return layers


def channels_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``LAYER:C1,C2`` or ``C1,C2`` (the one dreamed layer) -> (layer or "", channels)."""
    layer, sep, numbers = text.rpartition(":")
    try:
        channels = tuple(int(part) for part in numbers.split(",") if part.strip())
    except ValueError:
        channels = ()
    if not channels or min(channels) < 0 or (sep and not layer.strip()):
        raise argparse.ArgumentTypeError(
            f"expected LAYER:C1,C2 or C1,C2 with channel numbers from 0 "
            f"(e.g. block4_conv3:12,77), got {text!r}"
        )
    return layer.strip(), channels


def weights_url_arg(text: str) -> str:
    if url_scheme(text) not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def add_weights_flags(parser: argparse.ArgumentParser) -> None:
    """``--get-weights MODEL`` and its ``--weights-url`` (``livedream.weights``)."""
    group = parser.add_argument_group("model weights")
    group.add_argument(
        "--get-weights",
        choices=sorted(KERAS_WEIGHTS),
        default=None,
        metavar="MODEL",
        help="download MODEL's ImageNet weights (inception_v3: ~87 MB, vgg16: ~59 MB) into "
        "Keras' cache, check them against Keras' published hash, and exit",
    )
    group.add_argument(
        "--weights-url",
        type=weights_url_arg,
        default=None,
        metavar="URL",
        help="with --get-weights: download from this URL (a mirror) instead of Keras' own",
    )
