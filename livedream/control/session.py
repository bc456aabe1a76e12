"""The control page and OSC of one run, started and stopped with it.

``ControlSession(config, bridge, console)`` starts what ``config`` asks for (nothing at all
without ``--control`` or ``--osc``) and prints where the page is: once, to the console, not
to any log, since the address carries the token.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from rich.console import Console

from livedream.control.config import ControlConfig

if TYPE_CHECKING:
    from livedream.control.bridge import ControlBridge
    from livedream.control.osc import OscServer
    from livedream.control.server import ControlServer

log = logging.getLogger(__name__)


def lan_address() -> str | None:
    """This machine's address on its local network (what a phone would use), or None.

    A UDP socket "connected" to a private address picks the outgoing interface; nothing is
    sent.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 9))
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith(("127.", "0.")) else address


class ControlSession:
    """The run's control page and OSC server. A context manager; ``close()`` is idempotent.

    Args:
        config: what the flags asked for.
        bridge: the run's settings, figures and newest frame.
        console: where the page's address is printed (once).
    """

    def __init__(self, config: ControlConfig, bridge: ControlBridge, console: Console) -> None:
        self.config = config
        self.bridge = bridge
        self.console = console
        self.server: ControlServer | None = None
        self.osc: OscServer | None = None

    def start(self) -> ControlSession:
        """Starts the page and OSC as asked; on a failure stops what started and re-raises.

        Raises:
            ControlError: an address that cannot be bound (one line).
        """
        try:
            if self.config.web is not None:
                from livedream.control.server import ControlServer

                self.server = ControlServer(self.bridge, self.config.web, token=self.config.token)
                self.server.start()
                self._announce(self.server.port)
            if self.config.osc is not None:
                from livedream.control.osc import OscServer

                self.osc = OscServer(self.bridge, self.config.osc).start()
                if not self.config.osc.loopback:
                    log.warning(
                        "OSC on %s has no authentication: anyone on the network can steer the "
                        "dream; bind it to 127.0.0.1 unless that is what you want",
                        self.config.osc,
                    )
                else:
                    log.info("OSC on %s:%d (/livedream/...)", self.config.osc.host, self.osc.port)
        except BaseException:
            self.close()
            raise
        return self

    def _announce(self, port: int) -> None:
        bind = self.config.web
        assert bind is not None
        token = self.config.token
        query = ""
        if token is not None:
            query = f"/?token={token}" if self.config.token_generated else "/?token=YOUR-TOKEN"
        if bind.loopback:
            host = f"[{bind.host}]" if ":" in bind.host else bind.host
            urls = [f"http://{host}:{port}{query}"]
        else:
            urls = [f"http://127.0.0.1:{port}{query} (here)"]
            lan = lan_address() if bind.host in ("0.0.0.0", "::") else bind.host
            if lan is not None:
                urls.append(f"http://{lan}:{port}{query} (a phone on the same network)")
        # Printed, never logged: the address carries the token.
        self.console.print(
            "control page: " + ", ".join(urls), highlight=False, markup=False, soft_wrap=True
        )

    def close(self) -> None:
        """Stops the page and OSC. Safe to call twice."""
        if self.server is not None:
            self.server.close()
        if self.osc is not None:
            self.osc.close()

    def __enter__(self) -> ControlSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
