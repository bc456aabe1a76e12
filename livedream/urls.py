"""URLs of network inputs: telling them from paths, and keeping their passwords out of sight.

No dependencies beyond the standard library: the CLI's logging set-up uses ``mask_passwords``
before OpenCV or TensorFlow are imported.

    >>> mask_url("rtsp://admin:hunter2@192.168.1.20:554/stream1")
    'rtsp://admin:***@192.168.1.20:554/stream1'
"""

from __future__ import annotations

import re

# What OpenCV's FFMPEG backend reads as a live network source (the list).
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# user:password@ in any URL inside a text: the password is what goes, up to the last @ before
# the path (a password with an unescaped @ in it is still hidden whole).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^\s/]*@")


def url_scheme(spec: str) -> str | None:
    """The lower-case scheme of ``spec`` when it looks like a URL (``rtsp://...``), else None."""
    match = _SCHEME.match(spec)
    return match.group(1).lower() if match else None


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by ***."""
    return _USERINFO.sub(r"\1***@", text)


def mask_url(url: str) -> str:
    """The URL fit to print: ``rtsp://user:pass@host`` becomes ``rtsp://user:***@host``."""
    return mask_passwords(url)
