"""The control page's guard: Host, token and Origin checks on every request.

- Bound to loopback, a request whose ``Host`` is not this server's own name on loopback
  (``localhost``, ``127.0.0.1``, ``[::1]`` or the bound address, with the port) gets 403:
  a web page that rebinds its own name to 127.0.0.1 (DNS rebinding) cannot reach the page.
- With a token (required beyond loopback), every request must carry it: the ``token`` query
  parameter, an ``Authorization: Bearer`` header or the cookie the page sets. A missing or
  wrong token gets a bare 401 that reveals nothing. The token is never logged (aiohttp's
  access log is off: it would print the query).
- On any bind, a request that changes something (not GET or HEAD) or opens a WebSocket, and
  whose ``Origin`` is not the page's own, gets 403: no other web page can drive the camera.
  A client that sends no ``Origin`` (curl, OSC bridges) is not a browser page and may.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from livedream.control.config import Bind

COOKIE = "livedream_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The page loads nothing from any other host and sends nothing to one.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
}


def allowed_hosts(bind: Bind, port: int) -> frozenset[str]:
    """The ``Host`` values a loopback-bound page answers (lower case, with the port)."""
    names = {*LOOPBACK_NAMES, f"[{bind.host}]" if ":" in bind.host else bind.host}
    return frozenset(f"{name.lower()}:{port}" for name in names)


def _forbidden() -> web.Response:
    return web.Response(status=403, text="403: Forbidden")


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="401: Unauthorized")


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the safety headers on every response, streams included."""
    response.headers.update(HEADERS)


def request_token(request: web.Request) -> str | None:
    """The token a request carries: query, ``Authorization: Bearer`` header or cookie."""
    token = request.query.get("token")
    if token is None:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
    if token is None:
        token = request.cookies.get(COOKIE)
    return token


def guard(
    bind: Bind, port: Callable[[], int], token: str | None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware for a page bound at ``bind`` (``port()``: the port it got)."""
    expected = token.encode() if token is not None else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if bind.loopback and request.host.lower() not in allowed_hosts(bind, port()):
            return _forbidden()
        if expected is not None:
            given = request_token(request)
            if given is None or not hmac.compare_digest(given.encode(), expected):
                return _unauthorized()
        changes = request.method not in ("GET", "HEAD")
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        origin = request.headers.get("Origin")
        if (changes or upgrade) and origin is not None and origin != f"http://{request.host}":
            return _forbidden()
        if expected is not None and "token" in request.query and request.path == "/":
            # The page's token moves from the address into a cookie, out of the address bar.
            moved = web.Response(status=303, headers={"Location": "/"})
            moved.set_cookie(
                COOKIE, request.query["token"], httponly=True, samesite="Strict", path="/"
            )
            return moved
        return await handler(request)

    return middleware
