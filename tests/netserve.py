"""Real network sources on 127.0.0.1 for the stream tests: an MJPEG camera over HTTP (what phone
webcam apps serve), a file server that answers Range requests (what FFmpeg needs to read an mp4
whose index is at its end), a server that accepts and then says nothing, and a refused port.

Every server runs in daemon threads, binds a free port on 127.0.0.1 only and is a context
manager whose ``close()`` ends every connection it holds. ``scripts/soak.py --stream`` uses the
MJPEG camera too (a stream that drops and comes back).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
from helpers import make_numbered_frame

BOUNDARY = "livedreamframe"


class _Server:
    """A ``ThreadingHTTPServer`` on a free 127.0.0.1 port, serving in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    path = "/"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def url_with_login(self, user: str, password: str) -> str:
        """``url`` with ``user:password@`` in it (the servers ignore the login)."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}{self.path}"

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # test output stays readable


class _MjpegHandler(_Quiet):
    def do_GET(self) -> None:
        server: MjpegServer = self.server.owner  # type: ignore[attr-defined]
        server.requests += 1
        if server.down.is_set():
            self.send_error(503, "camera off")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            while not server.stopping.is_set() and not server.down.is_set():
                if server.stalled.is_set():
                    server.stopping.wait(0.05)  # connected, saying nothing
                    continue
                jpeg = server.next_jpeg()
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()
                server.stopping.wait(1.0 / server.fps)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away


class MjpegServer(_Server):
    """A live MJPEG camera at ``url``: numbered frames, ``fps`` a second, on every connection.

    ``down.set()`` takes the camera off the air (open connections end, new ones get 503);
    ``down.clear()`` brings it back. ``stalled.set()`` keeps every connection open but sends
    nothing until cleared (a frozen phone app). ``frames_sent`` counts across connections.
    """

    path = "/video"  # what phone webcam apps serve

    def __init__(self, *, width: int = 160, height: int = 120, fps: float = 25.0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.down = threading.Event()
        self.stalled = threading.Event()
        self.requests = 0
        self.frames_sent = 0
        self._count_lock = threading.Lock()
        super().__init__(_MjpegHandler)

    def next_jpeg(self) -> bytes:
        with self._count_lock:
            index = self.frames_sent
            self.frames_sent += 1
        ok, data = cv2.imencode(".jpg", make_numbered_frame(index, self.width, self.height))
        assert ok
        return bytes(data)


class _FileHandler(_Quiet):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        server: RangeFileServer = self.server.owner  # type: ignore[attr-defined]
        data = server.data
        start, end = 0, len(data) - 1
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2) or end), end)
            if start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        # Said out loud: FFmpeg otherwise sends its next request (a seek) down this socket.
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data[start : end + 1])


class RangeFileServer(_Server):
    """Serves one file's bytes at ``url`` (any path), answering Range requests as real web
    servers do, so FFmpeg can seek to an mp4's index at the end."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.path = f"/{path.name}"
        super().__init__(_FileHandler)


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a stalled camera."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self._sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound once, then closed): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
