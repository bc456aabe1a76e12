"""Whether a window can be shown here: the OpenCV GUI backend and the X11/Wayland display.

Below the preview window and the setup check, so both ask the same question the same way.
"""

from __future__ import annotations

import os
import re
import socket
import sys

import cv2

from livedream.errors import DisplayError


def gui_backend() -> str:
    """The GUI this OpenCV build has: ``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``, ``NONE``..."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1).upper() if match else "UNKNOWN"


def _x_server_reachable(display: str) -> bool:
    """True when something accepts connections at the X11 ``display`` (``:0``, ``host:10.0``).

    Qt aborts the whole process when it cannot reach the X server, so look before opening.
    """
    match = re.fullmatch(r"(?P<host>[^:]*):(?P<number>\d+)(?:\.\d+)?", display)
    if match is None:
        return False
    host, number = match["host"], int(match["number"])
    if host in ("", "unix") or host.endswith("/unix"):
        for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        if host == "unix":
            return False
        host = "localhost"
    try:
        with socket.create_connection((host, 6000 + number), timeout=1.0):
            return True
    except OSError:
        return False


def no_display_reason() -> str | None:
    """Why no window can be shown here, or None when one can."""
    gui = gui_backend()
    if gui == "NONE":
        return "this OpenCV build has no GUI (opencv-python-headless?)"
    if not sys.platform.startswith("linux"):
        return None
    x_display = os.environ.get("DISPLAY", "")
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if gui.startswith("QT") and os.environ.get("QT_QPA_PLATFORM", "xcb").startswith("xcb"):
        # This Qt talks X11 only (XWayland on a Wayland desktop sets DISPLAY).
        if not x_display:
            return "DISPLAY is not set"
        if not _x_server_reachable(x_display):
            return f"no X server answers on DISPLAY={x_display}"
        return None
    if x_display and _x_server_reachable(x_display):
        return None
    if wayland:
        return None
    if x_display:
        return f"no X server answers on DISPLAY={x_display}"
    return "neither DISPLAY nor WAYLAND_DISPLAY is set"


def has_display() -> bool:
    """True when a preview window can be opened here (without opening one)."""
    return no_display_reason() is None


def check_display() -> None:
    """Raises ``DisplayError`` (pointing to the other outputs) when no window can be shown."""
    reason = no_display_reason()
    if reason is not None:
        raise display_error(reason)


def display_error(reason: str) -> DisplayError:
    return DisplayError(
        f"cannot open a preview window: no display ({reason}); run with --no-preview and "
        "use --output FILE or --virtual-cam to see the dream"
    )
