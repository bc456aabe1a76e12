"""OSC for live-visuals rigs: python-osc over UDP, in the thread ``livedream-osc``.

Every message goes through the ``ControlBridge``, checked as the page's changes are; a value
out of range or of the wrong type is ignored with one log line. OSC has no authentication:
bound beyond loopback, anyone on the network can steer the dream, and the run warns so.

Addresses (``ADDRESSES``): numbers as their OSC types say (``f`` float: an int is taken too;
``i`` int; on/off: 0 or 1, or OSC true/false).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from livedream.control.bridge import ControlBridge
from livedream.control.config import Bind
from livedream.control.values import BadValue
from livedream.errors import LivedreamError

log = logging.getLogger(__name__)

PREFIX = "/livedream/"
JOIN_TIMEOUT = 2.0  # seconds close() waits for the thread
POLL = 0.1  # seconds between the server's looks at its stop flag

# address -> (OSC type, what it sets)
ADDRESSES: dict[str, tuple[str, str]] = {
    "/livedream/strength": ("f", "strength: share of 0..255 moved per step"),
    "/livedream/steps": ("i", "gradient steps per keyframe"),
    "/livedream/layer": ("i", "layer preset number, from 0 (as l cycles them)"),
    "/livedream/channels": ("i", "channel preset number, from 0 (as c cycles them; the last: all)"),
    "/livedream/face": ("f", "face strength: share of the dream kept on faces"),
    "/livedream/faces": ("i", "face protection on (1) / off (0)"),
    "/livedream/dream": ("i", "dream on (1) / off (0)"),
    "/livedream/blend": ("f", "share of the dream carried on"),
    "/livedream/flow": ("i", "flow carry on (1) / off (0)"),
    "/livedream/mirror": ("i", "mirror on (1) / off (0)"),
    "/livedream/guide": ("i", "guide on (1) / off (0)"),
    "/livedream/rate": ("f", "dream rate aimed at, keyframes a second"),
    "/livedream/reset": ("", "drop the carried dream (no argument)"),
    "/livedream/screenshot": ("", "save a screenshot where the run is (no argument)"),
    "/livedream/look": ("s", "load a saved look by name"),
}
SETTING = {  # address -> setting name, for the plain settings
    "/livedream/strength": "strength",
    "/livedream/steps": "steps",
    "/livedream/face": "face_strength",
    "/livedream/faces": "faces",
    "/livedream/dream": "dream",
    "/livedream/blend": "blend",
    "/livedream/flow": "flow",
    "/livedream/mirror": "mirror",
    "/livedream/guide": "guide",
    "/livedream/rate": "dream_rate",
}


def _on_off(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadValue(f"expected 0 or 1, got {value!r}")


def _preset(names: list[str], value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"expected a whole number, got {value!r}")
    if not 0 <= value < len(names):
        raise BadValue(f"expected a {what} from 0 to {len(names) - 1}, got {value}")
    return names[value]


class OscServer:
    """Takes OSC messages on ``bind`` (UDP) and applies them. ``close()`` is idempotent.

    Raises (from ``start``):
        ControlError: the address cannot be bound.
    """

    def __init__(self, bridge: ControlBridge, bind: Bind) -> None:
        self.bridge = bridge
        self.bind = bind
        self.port = bind.port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> OscServer:
        """Binds and serves in the thread ``livedream-osc``; idempotent."""
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        from livedream.control.server import ControlError

        if self._thread is not None:
            return self
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self.handle)
        try:
            self._server = BlockingOSCUDPServer((self.bind.host, self.bind.port), dispatcher)
        except OSError as exc:
            raise ControlError(
                f"cannot take OSC on {self.bind}: {os.strerror(exc.errno) if exc.errno else exc}; "
                "pick another port "
                "or address with --osc"
            ) from None
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL,), name="livedream-osc", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops taking messages and joins the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            if self._thread is not None and self._thread.is_alive():
                stopper = threading.Thread(target=self._server.shutdown, daemon=True)
                stopper.start()
                stopper.join(JOIN_TIMEOUT)
                self._thread.join(JOIN_TIMEOUT)
            self._server.server_close()

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, address: str, *args: Any) -> None:
        """One message: applied, or ignored with one log line. The OSC thread."""
        try:
            self._apply(address, args)
        except (BadValue, LivedreamError) as exc:  # a look, a screenshot: one line too
            log.warning("OSC %s %s ignored: %s", address, " ".join(map(repr, args)), exc)

    def _apply(self, address: str, args: tuple[Any, ...]) -> None:
        if address not in ADDRESSES:
            raise BadValue(f"unknown address: expected one of {', '.join(ADDRESSES)}")
        kind = ADDRESSES[address][0]
        if len(args) != len(kind):
            raise BadValue(f"expected {len(kind)} argument(s) ({kind or 'none'}), got {len(args)}")
        bridge = self.bridge
        actions: dict[str, Callable[[], object]] = {
            "/livedream/reset": bridge.reset,
            "/livedream/screenshot": bridge.screenshot,
        }
        if address in actions:
            actions[address]()
            return
        value = args[0]
        if isinstance(value, float):  # OSC floats are 32-bit: 0.03 arrives as 0.0299999993
            value = float(f"{value:.7g}")
        if address == "/livedream/look":
            if not isinstance(value, str):
                raise BadValue(f"expected a look's name, got {value!r}")
            bridge.load_look(value)
        elif address == "/livedream/layer":
            bridge.change({"layers": _preset(bridge.layer_names(), value, "layer preset")})
        elif address == "/livedream/channels":
            bridge.change({"channels": _preset(bridge.channel_names(), value, "channel preset")})
        else:
            name = SETTING[address]
            if kind == "i" and name not in ("steps",):
                value = _on_off(value)
            bridge.change({name: value})
