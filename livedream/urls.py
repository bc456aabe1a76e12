"""URLs of network inputs: telling them from paths, and keeping their secrets out of sight.

No dependencies beyond the standard library: the CLI's logging set-up uses ``mask_passwords``
before OpenCV or TensorFlow are imported.

    >>> mask_url("rtsp://admin:hunter2@192.168.1.20:554/stream1")
    'rtsp://admin:***@192.168.1.20:554/stream1'
    >>> mask_url("rtsp://TOKEN123abc@192.168.1.20/s")
    'rtsp://***@192.168.1.20/s'
    >>> mask_url("http://cam/videostream.cgi?user=admin&pwd=hunter2")
    'http://cam/videostream.cgi?user=admin&pwd=***'

What is hidden, in every ``scheme://`` URL inside a text:

- the password of ``user:password@``, whatever characters it holds (``/``, ``@``, ``:``, ``?``):
  everything up to the last ``@`` that is followed by a host goes; the user name stays;
- a user name alone (``TOKEN@host``): cameras and services put access tokens there;
- the value of every query or fragment parameter whose name means a secret (``SECRET_NAME``:
  ``pwd``, ``password``, ``access_token``, ``apiKey``, ``X-Auth``, ``signature``, ...).

It errs on hiding too much: a path with an ``@`` in it may lose the part before it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# What OpenCV's FFMPEG backend reads as a live network source (the list).
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp")
HIDDEN = "***"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A URL inside a text: a scheme, ://, and everything up to the next whitespace. A password may
# hold any other character, so quotes and brackets around a URL are taken in; they do no harm.
_URL_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)(\S+)")
# What may follow the @ that ends the user part: a host (name, IPv4, [IPv6]), a port, then the
# end or a path, query or fragment.
_HOST_AFTER = re.compile(
    r"(?:\[[0-9A-Fa-f:.%A-Za-z]*\]|[A-Za-z0-9._~%!$'()*+,=-]*)(?::\d*)?(?:[/?#;]|$)"
)
# Parameter names that mean a secret, matched anywhere in the (decoded) name, in any case:
# pas (password, passwd, loginpas), pwd, token (access_token), key (apiKey, api_key), auth
# (X-Auth), sig (signature), secret, cred (X-Amz-Credential), session, jwt, otp; and the
# short names that mean it only whole (pw, psw, sid, code, p).
SECRET_NAME = re.compile(
    r"pas|pwd|token|key|auth|sig|secret|cred|session|jwt|otp|^(?:pw|psw|sid|code|p)$",
    re.IGNORECASE,
)
# Punctuation after a URL in a sentence ("cannot open URL: why"), kept out of the URL.
_TRAILING = ":,.;)]}'\"!>"
# name=value in a query or fragment: the value runs to the next & or # (or ; as some cameras
# separate), or the end of the URL.
_PARAMETER = re.compile(r"([?&#;])([^=&#;?]+)=([^&#;]*)")


def url_scheme(spec: str) -> str | None:
    """The lower-case scheme of ``spec`` when it looks like a URL (``rtsp://...``), else None."""
    match = _SCHEME.match(spec)
    return match.group(1).lower() if match else None


def _user_end(rest: str) -> int:
    """Where the user part of ``rest`` (a URL after its ``://``) ends: the index of its ``@``,
    or -1 when it has none. The last ``@`` followed by a host wins (a password may hold @)."""
    at = rest.rfind("@")
    while at >= 0:
        if _HOST_AFTER.match(rest, at + 1):
            return at
        at = rest.rfind("@", 0, at)
    return -1


def _mask_user(user_part: str) -> str:
    """``admin:secret`` -> ``admin:***``; a user alone (a token) -> ``***``."""
    user, colon, _ = user_part.partition(":")
    if colon and user and not re.search(r"[/?#\[\]]", user):
        return f"{user}:{HIDDEN}"
    return HIDDEN


def _mask_parameter(match: re.Match[str]) -> str:
    sep, name, value = match.group(1), match.group(2), match.group(3)
    if value and SECRET_NAME.search(unquote(name)):
        return f"{sep}{name}={HIDDEN}"
    return match.group(0)


def _mask_one(scheme: str, rest: str) -> str:
    """One URL (``rest``: what follows ``scheme://``) with its secrets hidden."""
    at = _user_end(rest)
    if at >= 0:
        rest = f"{_mask_user(rest[:at])}@{rest[at + 1 :]}"
    return scheme + _PARAMETER.sub(_mask_parameter, rest)


def _mask_in_text(match: re.Match[str]) -> str:
    rest = match.group(2)
    # Punctuation that ends a sentence after a URL ("cannot open URL: why") stays readable.
    kept = rest.rstrip(_TRAILING)
    return _mask_one(match.group(1), kept) + rest[len(kept) :]


def mask_passwords(text: str) -> str:
    """``text`` with the secrets of every ``scheme://`` URL in it hidden (see the module)."""
    return _URL_IN_TEXT.sub(_mask_in_text, text)


def without_user(url: str) -> str:
    """``url`` without its user part (``rtsp://admin:pa/ss@host/s`` -> ``rtsp://host/s``), so
    that ``urllib.parse.urlsplit`` finds its host and port whatever the password holds."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    rest = url[match.end() :]
    return url[: match.end()] + rest[_user_end(rest) + 1 :]


def mask_url(url: str) -> str:
    """The URL fit to print: ``rtsp://user:pass@host`` becomes ``rtsp://user:***@host``.

    The whole of ``url`` is one URL here, spaces in a password included.
    """
    match = _SCHEME.match(url)
    if match is None:
        return mask_passwords(url)
    return _mask_one(url[: match.end()], url[match.end() :])
