"""Network inputs: MJPEG over HTTP (a phone as a webcam), a video file at an http:// URL, and
servers that refuse, stall, drop and come back, all real and on 127.0.0.1 (``netserve``).

The reconnect windows are shortened through ``StreamSource``'s parameters; the CLI tests run
with the defaults the user gets. The only timings asserted are bounds on hangs.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from conftest import FAST, LivedreamProcess, WriteVideo
from helpers import wait_for
from netserve import MjpegServer, RangeFileServer, SilentServer, refused_port
from rich.console import Console

from livedream.args import build_parser
from livedream.errors import SourceError, SourceLostError
from livedream.sources import StreamSource, open_source
from livedream.urls import mask_passwords

PASSWORD = "hunter2secret"
# The promise is a one-line error within 10 s; a fresh interpreter adds its start-up.
OPEN_ERROR_WITHIN = 20.0
# Short windows for the in-process tests: a stall is noticed in 0.5 s, a reopen gives up at 1 s.
QUICK = {"open_timeout": 1.0, "stall_after": 0.5}


def livedream(*args: str, timeout: float = OPEN_ERROR_WITHIN) -> tuple[int, str, float]:
    """A real ``livedream`` process run to its end: (exit code, stdout + stderr, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "livedream", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open as a video"
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    with MjpegServer() as server:
        yield server


@pytest.fixture
def clip_url(tmp_path: Path, write_video: WriteVideo) -> Iterator[str]:
    """A 40-frame 160x120 .mp4 (index at its end) served with Range support."""
    clip = write_video(tmp_path / "clip.mp4", frames=40)
    with RangeFileServer(clip) as server:
        yield server.url


def read_n(source: StreamSource, n: int) -> None:
    for _ in range(n):
        frame = source.read()
        assert frame is not None and frame.shape == (source.height, source.width, 3)


# --- recognising and naming URLs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
        ("http://u:p@ss@host/video", "http://u:***@host/video"),
        ("cannot open https://me:x:y@h/v: refused", "cannot open https://me:***@h/v: refused"),
        ("rtsp://admin@10.0.0.5/s1", "rtsp://admin@10.0.0.5/s1"),
        ("clip.mp4", "clip.mp4"),
    ],
)
def test_passwords_are_masked_in_text(text: str, shown: str) -> None:
    assert mask_passwords(text) == shown


def test_an_unsupported_url_is_named_without_its_password() -> None:
    with pytest.raises(SourceError) as info:
        open_source(f"rtmp://me:{PASSWORD}@127.0.0.1/live")
    assert str(info.value).startswith("cannot open rtmp://me:***@127.0.0.1/live: rtmp:// is not")
    assert "rtsp://" in str(info.value)


def test_help_names_stream_urls() -> None:
    text = build_parser().format_help()
    assert "rtsp://" in text and "http://" in text


# --- live MJPEG over HTTP ------------------------------------------------------------------


def test_mjpeg_stream_delivers_live_frames(camera: MjpegServer) -> None:
    with open_source(camera.url) as source:
        assert isinstance(source, StreamSource)
        assert source.is_live and source.frame_count is None
        assert (source.width, source.height) == (160, 120)
        read_n(source, 20)
        assert source.status == ""


@pytest.mark.parametrize("failure", ["down", "stalled"])
def test_stream_that_stops_is_reopened_and_frames_flow_again(
    camera: MjpegServer, failure: str
) -> None:
    source = StreamSource(camera.url, reconnect_for=30.0, **QUICK)
    statuses: list[str] = []
    with source:
        read_n(source, 5)
        getattr(camera, failure).set()

        def bring_back() -> None:
            # Back once the source says it is reconnecting (a second attempt, for the backoff).
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline:
                status = source.status
                if status:
                    statuses.append(status)
                if "attempt 2" in status:
                    break
                time.sleep(0.02)
            getattr(camera, failure).clear()

        helper = threading.Thread(target=bring_back)
        helper.start()
        sent_before = camera.frames_sent
        read_n(source, 10)  # blocks through the reconnect, then frames flow again
        helper.join(5)
        assert camera.frames_sent > sent_before
        assert source.status == ""
    assert statuses and all(
        re.fullmatch(r"reconnecting \(attempt \d+, \d+ s\)", s) for s in statuses
    ), statuses


def test_stream_that_stays_down_ends_with_source_lost(camera: MjpegServer) -> None:
    source = StreamSource(camera.url, reconnect_for=1.5, **QUICK)
    with source:
        read_n(source, 5)
        camera.down.set()
        started = time.monotonic()
        with pytest.raises(SourceLostError) as info:
            read_n(source, 1000)
        waited = time.monotonic() - started
    assert waited < 10.0  # a bound on the hang: 1.5 s of attempts of at most 1 s each
    message = str(info.value)
    assert message.startswith(f"{camera.url} dropped and did not come back within 1.5 s (")
    assert "\n" not in message


def test_closing_a_stream_stops_a_reconnect_at_once(camera: MjpegServer) -> None:
    source = StreamSource(camera.url, reconnect_for=30.0, **QUICK)
    read_n(source, 3)
    camera.down.set()
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    deadline = time.monotonic() + 10.0
    while not source.status and time.monotonic() < deadline:
        time.sleep(0.02)
    assert source.status.startswith("reconnecting")
    source.close()
    reader.join(5.0)
    assert not reader.is_alive()
    assert results == [None]  # the end of the stream, not a lost one
    assert source.closed


# --- a video file at a URL -----------------------------------------------------------------


def test_video_at_a_url_is_read_frame_for_frame(clip_url: str) -> None:
    with open_source(clip_url) as source:
        assert not source.is_live and source.frame_count == 40
        frames = 0
        while source.read() is not None:
            frames += 1
    assert frames == 40


def test_video_at_a_url_rendered_to_a_file_has_every_frame(clip_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    code, output, _ = livedream("-i", clip_url, "-o", str(out), *FAST, timeout=300)
    assert code == 0, output
    assert "a video of 40 frames" in output
    assert count_frames(out) == 40


# --- opening that fails: one line, bounded, no password ----------------------------------


@pytest.mark.parametrize("verbose", [False, True])
def test_refused_port_is_one_line_without_the_password(verbose: bool, tmp_path: Path) -> None:
    port = refused_port()
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/stream1"
    args = ["-i", url, "-o", str(tmp_path / "out.mp4"), *FAST]
    code, output, _ = livedream(*args, *(["--verbose"] if verbose else []))
    assert code == 2
    assert error_line(output) == (
        f"error: cannot open stream rtsp://admin:***@127.0.0.1:{port}/stream1: connection "
        f"refused by 127.0.0.1:{port}; is the camera (or phone app) streaming, and is the "
        "port right?"
    )
    assert PASSWORD not in output
    if not verbose:
        assert output.strip().splitlines() == [error_line(output)]  # FFmpeg's lines stay hidden


def test_server_that_stalls_is_one_line_within_the_bound(tmp_path: Path) -> None:
    with SilentServer() as server:
        url = f"http://me:{PASSWORD}@127.0.0.1:{server.port}/video"
        code, output, _ = livedream("-i", url, "-o", str(tmp_path / "out.mp4"), *FAST)
        assert server.accepted  # it did connect: the wait was for an answer
    assert code == 2
    assert output.strip().splitlines() == [
        f"error: cannot open stream http://me:***@127.0.0.1:{server.port}/video: "
        f"127.0.0.1:{server.port} accepted the connection but sent no video within 8 s"
    ]
    assert PASSWORD not in output


def test_live_stream_run_never_prints_its_password(camera: MjpegServer, tmp_path: Path) -> None:
    out = tmp_path / "call.mp4"
    url = camera.url_with_login("me", PASSWORD)
    proc = LivedreamProcess(["-i", url, "-o", str(out), "--verbose", *FAST])
    try:
        deadline = time.monotonic() + 120.0
        while "me:***@" not in proc.err or camera.frames_sent < 50:
            assert proc.proc.poll() is None, proc.err
            assert time.monotonic() < deadline, proc.err
            time.sleep(0.1)
        # A few frames dreamed and recorded: the encoder flushed them to the hidden file.
        temp = out.with_name(f".{out.name}.partial{out.suffix}")
        wait_for(lambda: temp.exists() and temp.stat().st_size > 1000, 120, "frames recorded")
        proc.proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130, proc.err
    finally:
        proc.close()
    assert PASSWORD not in proc.err
    assert f"opened http://me:***@127.0.0.1:{camera.port}/video" in proc.err
    assert count_frames(out) > 0


def test_lost_stream_ends_the_run_with_the_recording_finalized(
    camera: MjpegServer, tmp_path: Path
) -> None:
    from livedream.args import parse_args
    from livedream.run import StreamRun

    out = tmp_path / "call.mp4"
    config, _ = parse_args(["-i", camera.url, "-o", str(out), "--no-preview", *FAST])
    source = StreamSource(camera.url, reconnect_for=1.0, **QUICK)
    run = StreamRun(config, source, Console(stderr=True, force_terminal=False))

    def drop_once_dreaming() -> None:  # the camera goes away once dreamed frames went out
        wait_for(lambda: run.stats.output > 0, 120, "dreamed frames")
        camera.down.set()

    threading.Thread(target=drop_once_dreaming, daemon=True).start()
    with pytest.raises(SourceLostError, match="did not come back within 1 s"):
        run.run()
    assert run.stats.output > 0
    assert count_frames(out) >= run.stats.output  # finalized, every dreamed frame in it
    # No thread is left behind (one inside a long TensorFlow call ends when the call returns).
    wait_for(lambda: run.pipeline.alive_threads() == [], 120, "the pipeline's threads to end")
