"""The control flags, decided once: where the page and OSC listen, the token, the look.

Free of aiohttp and python-osc: ``RunConfig`` holds a ``ControlConfig`` in every run.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livedream.control.looks import SavedLook

DEFAULT_HOST = "127.0.0.1"  # the page is private to this machine unless a host is given


@dataclass(frozen=True)
class Bind:
    """A host and port to listen on; port 0 picks a free one."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Only this machine can reach it (``localhost``, 127.0.0.0/8, ``::1``)."""
        return is_loopback(self.host)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ControlConfig:
    """What ``--control``, ``--control-token``, ``--osc`` and ``--look`` asked for.

    Attributes:
        web: where the control page listens; None: no page.
        token: the page's token (required beyond loopback); never shown in a repr or a log.
        token_generated: the token was made here, so the run prints it once.
        osc: where OSC messages are taken; None: no OSC.
        look: the look the run starts with (loaded and checked at the door).
    """

    web: Bind | None = None
    token: str | None = field(default=None, repr=False)
    token_generated: bool = False
    osc: Bind | None = None
    look: SavedLook | None = None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(text: str) -> Bind:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> ``Bind``; HOST defaults to 127.0.0.1.

    Raises:
        ValueError: with a one-line reason (expected / got).
    """
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, raw
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"expected [HOST:]PORT, with an IPv6 host in brackets, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(
            f"expected [HOST:]PORT such as 8080 or 0.0.0.0:8080, got {text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {port}")
    if not host or any(ch.isspace() or ch in "/?#@" for ch in host):
        raise ValueError(f"expected [HOST:]PORT such as 8080 or 0.0.0.0:8080, got {text!r}")
    return Bind(host, port)


def control_config(
    web: Bind | None, token: str | None, osc: Bind | None, look: SavedLook | None = None
) -> ControlConfig:
    """The decision: a page bound beyond loopback gets a token, generated when none is given."""
    generated = False
    if web is not None and token is None and not web.loopback:
        token, generated = secrets.token_urlsafe(18), True
    return ControlConfig(web=web, token=token, token_generated=generated, osc=osc, look=look)


# -- the flags (args.py adds them to its parser) -----------------------------------------
def bind_arg(text: str) -> Bind:
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def token_arg(text: str) -> str:
    if len(text) < 8 or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise argparse.ArgumentTypeError(
            "expected a token of 8 or more printable characters without spaces"
        )
    return text


def add_control_args(parser: argparse.ArgumentParser) -> None:
    """``--control``, ``--control-token``, ``--osc`` and ``--look``."""
    group = parser.add_argument_group("control page, OSC and looks")
    group.add_argument(
        "--control",
        type=bind_arg,
        default=None,
        metavar="[HOST:]PORT",
        help="serve a control page (live view, every setting, looks) on PORT; HOST defaults to "
        "127.0.0.1 (this machine only); 0.0.0.0 opens it to the network, behind a token",
    )
    group.add_argument(
        "--control-token",
        type=token_arg,
        default=None,
        metavar="TOKEN",
        help="the control page's token (default beyond 127.0.0.1: a new one, printed once)",
    )
    group.add_argument(
        "--osc",
        type=bind_arg,
        default=None,
        metavar="[HOST:]PORT",
        help="take OSC messages (/livedream/strength f, ...) on this UDP port; HOST defaults "
        "to 127.0.0.1 (OSC has no authentication)",
    )
    group.add_argument(
        "--look",
        default=None,
        metavar="NAME",
        help="start with a saved look (saved by the control page or the preview's v key)",
    )


def control_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ControlConfig:
    """The control flags, decided: a token where one is needed, the look loaded and checked."""
    from livedream.control.looks import LookError, load_look, looks_folder

    if args.control_token is not None and args.control is None:
        parser.error("--control-token needs --control [HOST:]PORT")
    look = None
    if args.look is not None:
        try:
            look = load_look(args.look, looks_folder(), None)  # the model: at the door
        except LookError as exc:
            parser.error(f"argument --look: {exc}")
    return control_config(args.control, args.control_token, args.osc, look)
