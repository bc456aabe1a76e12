"""The control page: an aiohttp server in a thread of its own, with the live view and the API.

    GET  /                 the page (page.html)
    GET  /api/state        settings, their choices, live figures, looks, screenshots (JSON)
    POST /api/settings     {"strength": 0.024, "steps": 3, ...}: checked, then applied
    POST /api/reset        drop the carried dream (the r key)
    POST /api/screenshot   save the newest output frame where the run is -> {"name", "url"}
    GET  /screenshots/NAME a screenshot of this run, as a download
    POST /api/looks        {"name": "mine"}: save the settings as a look
    POST /api/looks/load   {"name": "mine"}: apply a saved look
    POST /api/guide        the body is a PNG, JPEG or WebP image: the new guide
    GET  /live.mjpg        the live view (MJPEG); GET /live.jpg: the newest picture

A bad value gets 400 with a one-line reason and changes nothing. The guard
(``security.guard``) checks Host, token and Origin first. The server runs its own asyncio
loop in the daemon thread ``livedream-control``; the run's output loop only hands it a
reference to each frame (``ControlBridge.offer``): JPEG encoding happens here, at most
``LIVE_FPS`` a second and ``LIVE_WIDTH`` wide, once for every viewer, and a slow viewer just
gets fewer pictures. Nothing here can slow the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from importlib import resources
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from livedream.control.bridge import ControlBridge
from livedream.control.config import Bind
from livedream.control.looks import LookError
from livedream.control.security import add_headers, guard
from livedream.control.upload import MAX_BYTES, decode_guide
from livedream.control.values import BadValue
from livedream.errors import LivedreamError, SinkError

log = logging.getLogger(__name__)

LIVE_FPS = 15.0  # live view pictures a second, at most: smooth on a phone, cheap here
LIVE_WIDTH = 640  # px, at most: a phone screen's width
JPEG_QUALITY = 75
START_TIMEOUT = 10.0  # seconds the server gets to bind
JOIN_TIMEOUT = 2.0  # seconds close() waits for the thread
BOUNDARY = "livedreamframe"


class ControlError(LivedreamError):
    """The control page or OSC could not start (a port in use, an address not here)."""


class LiveFeed:
    """The live view's JPEG pictures: encoded on the server's loop, shared by every viewer."""

    def __init__(self, bridge: ControlBridge, *, fps: float = LIVE_FPS, width: int = LIVE_WIDTH):
        self.bridge = bridge
        self.period = 1.0 / fps
        self.width = width
        self.version = 0  # pictures encoded so far
        self.jpeg: bytes | None = None
        self._frame_no = 0  # the bridge's frame count at the last encoding
        self._encoded_at = -1e9

    def refresh(self, now: float) -> None:
        """Encodes the newest frame when it is new and the rate allows."""
        if now - self._encoded_at < self.period:
            return
        number, frame = self.bridge.latest()
        if frame is None or number == self._frame_no:
            return
        self._frame_no, self._encoded_at = number, now
        self.jpeg = encode_jpeg(frame, self.width)
        self.version += 1

    async def newer(self, seen: int, closing: asyncio.Event) -> int:
        """Waits for a picture newer than version ``seen``; returns its version (0: closing)."""
        loop = asyncio.get_running_loop()
        while not closing.is_set():
            self.refresh(loop.time())
            if self.version > seen and self.jpeg is not None:
                return self.version
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing.wait(), self.period / 2)
        return 0


def encode_jpeg(frame: np.ndarray, width: int = LIVE_WIDTH) -> bytes:
    """(H, W, 3) uint8 BGR -> JPEG bytes, at most ``width`` px wide."""
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(
            frame, (width, max(2, round(h * width / w))), interpolation=cv2.INTER_AREA
        )
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(data)


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.Response(status=status, text=reason)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise BadValue('expected a JSON object, such as {"strength": 0.024}')
    return body


class ControlServer:
    """The control page and its API for one run. A context manager; ``close()`` is idempotent.

    Args:
        bridge: the run's settings, figures and newest frame.
        bind: where to listen (port 0: a free one; ``port`` says which).
        token: required on every request when given (beyond loopback it must be).
    """

    def __init__(self, bridge: ControlBridge, bind: Bind, *, token: str | None = None) -> None:
        if token is None and not bind.loopback:
            raise ValueError("a control page bound beyond loopback needs a token")
        self.bridge = bridge
        self.bind = bind
        self.port = bind.port
        self.feed = LiveFeed(bridge)
        self._token = token
        self._page = resources.files("livedream.control").joinpath("page.html").read_bytes()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ControlServer:
        """Binds and serves in the thread ``livedream-control``; idempotent.

        Raises:
            ControlError: the address cannot be bound (one line, what to do).
        """
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="livedream-control", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            self.close()
            raise ControlError(
                f"the control page did not start on {self.bind} within {START_TIMEOUT:g} s"
            )
        if self._error is not None:
            self.close()
            error = self._error
            reason = (
                os.strerror(error.errno) if isinstance(error, OSError) and error.errno else error
            )
            raise ControlError(
                f"cannot serve the control page on {self.bind}: {reason}; "
                "pick another port or address with --control"
            )
        return self

    def close(self) -> None:
        """Stops serving (open live views end) and joins the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(closing.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.debug(
                    "livedream-control still busy after %.1f s; left as a daemon", JOIN_TIMEOUT
                )

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(), never lost
            self._error = exc
        finally:
            self._started.set()
            loop.close()

    async def _main(self) -> None:
        self._closing = asyncio.Event()
        # No access log: it would print the query, and the token with it.
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.bind.host, self.bind.port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._started.set()
            await self._closing.wait()
        finally:
            await runner.cleanup()

    # -- the app ---------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(
            middlewares=[guard(self.bind, lambda: self.port, self._token)],
            client_max_size=MAX_BYTES + 1,
        )
        app.on_response_prepare.append(add_headers)
        app.router.add_get("/", self._page_view)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/settings", self._settings)
        app.router.add_post("/api/reset", self._reset)
        app.router.add_post("/api/screenshot", self._screenshot)
        app.router.add_get("/screenshots/{name}", self._screenshot_file)
        app.router.add_post("/api/looks", self._save_look)
        app.router.add_post("/api/looks/load", self._load_look)
        app.router.add_post("/api/guide", self._guide)
        app.router.add_get("/live.mjpg", self._live)
        app.router.add_get("/live.jpg", self._still)
        return app

    async def _page_view(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.bridge.state())

    async def _settings(self, request: web.Request) -> web.Response:
        try:
            self.bridge.change(await _json_object(request))
        except BadValue as exc:
            return _bad(str(exc))
        return web.json_response(self.bridge.state())

    async def _reset(self, request: web.Request) -> web.Response:
        self.bridge.reset()
        return web.json_response(self.bridge.state())

    async def _screenshot(self, request: web.Request) -> web.Response:
        try:
            name = await asyncio.get_running_loop().run_in_executor(None, self.bridge.screenshot)
        except (BadValue, SinkError) as exc:
            return _bad(str(exc), 400 if isinstance(exc, BadValue) else 500)
        return web.json_response({"name": name, "url": f"/screenshots/{name}"})

    async def _screenshot_file(self, request: web.Request) -> web.StreamResponse:
        path = self.bridge.screenshot_path(request.match_info["name"])
        if path is None:
            return _bad("no such screenshot of this run", 404)
        return web.FileResponse(
            path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
        )

    async def _save_look(self, request: web.Request) -> web.Response:
        try:
            name = (await _json_object(request)).get("name")
            if not isinstance(name, str):
                raise BadValue(f'expected {{"name": "my-look"}}, got name {name!r}')
            self.bridge.save_look(name)
        except (BadValue, LookError) as exc:
            return _bad(str(exc))
        except OSError as exc:
            return _bad(f"could not save the look: {exc}", 500)
        return web.json_response(self.bridge.state())

    async def _load_look(self, request: web.Request) -> web.Response:
        try:
            name = (await _json_object(request)).get("name")
            if not isinstance(name, str):
                raise BadValue(f'expected {{"name": "my-look"}}, got name {name!r}')
            self.bridge.load_look(name)
        except (BadValue, LookError) as exc:
            return _bad(str(exc))
        return web.json_response(self.bridge.state())

    async def _guide(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > MAX_BYTES:
            return _bad(
                f"guide: expected an image of at most {MAX_BYTES // 2**20} MB, "
                f"got {length / 2**20:.1f} MB",
                413,
            )
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _bad(f"guide: expected an image of at most {MAX_BYTES // 2**20} MB", 413)
        try:
            image = await asyncio.get_running_loop().run_in_executor(None, decode_guide, data)
        except BadValue as exc:
            return _bad(str(exc))
        self.bridge.set_guide(image)
        return web.json_response(self.bridge.state())

    async def _still(self, request: web.Request) -> web.Response:
        self.feed.refresh(asyncio.get_running_loop().time())
        if self.feed.jpeg is None:
            return _bad("no picture yet: the first frame has not gone out", 503)
        return web.Response(body=self.feed.jpeg, content_type="image/jpeg")

    async def _live(self, request: web.Request) -> web.StreamResponse:
        closing = self._closing
        assert closing is not None
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        seen = 0
        try:
            while (seen := await self.feed.newer(seen, closing)) and self.feed.jpeg is not None:
                jpeg = self.feed.jpeg
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                head += f"Content-Length: {len(jpeg)}\r\n\r\n"
                await response.write(head.encode() + jpeg + b"\r\n")
        except ConnectionError:  # the viewer went away: nothing else to do
            pass
        return response
