"""Network inputs: MJPEG over HTTP (a phone as a webcam), a video file at an http:// URL, and
servers that refuse, stall, drop and come back, all real and on 127.0.0.1 (``netserve``).

The reconnect windows are shortened through ``StreamSource``'s parameters; the CLI tests run
with the defaults the user gets. The only timings asserted are bounds on hangs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from conftest import FAST, WriteVideo
from helpers import stream_run, wait_for
from netserve import MjpegServer, RangeFileServer, SilentServer, refused_port
from rich.console import Console

from livedream.args import build_parser, parse_args
from livedream.cli import main
from livedream.errors import SourceError, SourceLostError
from livedream.sources import StreamSource, open_source
from livedream.urls import mask_passwords, mask_url

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
        # A user name alone may be an access token.
        ("rtsp://TOKEN123abc@127.0.0.1:9/s", "rtsp://***@127.0.0.1:9/s"),
        ("rtsp://admin@10.0.0.5/s1", "rtsp://***@10.0.0.5/s1"),
        # A password may hold any character: / ? # : @ are all hidden with it.
        ("rtsp://admin:ab/cd@127.0.0.1:9/s", "rtsp://admin:***@127.0.0.1:9/s"),
        ("rtsp://admin:a?b#c@h/s", "rtsp://admin:***@h/s"),
        ("'rtsp://admin:q@w:e/r@[::1]:554/s'", "'rtsp://admin:***@[::1]:554/s'"),
        # Query and fragment parameters whose names mean a secret, in any case.
        (
            "http://admin:s3cret@127.0.0.1:9/videostream.cgi?user=admin&pwd=hunter2",
            "http://admin:***@127.0.0.1:9/videostream.cgi?user=admin&pwd=***",
        ),
        (
            "https://h/live?Password=a&PASS=b&passwd=c&token=d&key=e&auth=f&sig=g&secret=h",
            "https://h/live?Password=***&PASS=***&passwd=***&token=***&key=***&auth=***"
            "&sig=***&secret=***",
        ),
        (
            "http://h/s.m3u8?access_token=a&apiKey=b&X-Auth=c&signature=d&X-Amz-Credential=e",
            "http://h/s.m3u8?access_token=***&apiKey=***&X-Auth=***&signature=***"
            "&X-Amz-Credential=***",
        ),
        (
            "http://h/v?usr=me&loginpas=x;sid=y#id_token=z",
            "http://h/v?usr=me&loginpas=***;sid=***#id_token=***",
        ),
        ("http://h/v?width=640&fps=25", "http://h/v?width=640&fps=25"),
        (
            "opened http://h/v?pw=1 and rtsp://k@h2/s",
            "opened http://h/v?pw=*** and rtsp://***@h2/s",
        ),
        ("clip.mp4", "clip.mp4"),
        ("key=value outside a URL", "key=value outside a URL"),
    ],
)
def test_secrets_are_masked_in_text(text: str, shown: str) -> None:
    assert mask_passwords(text) == shown
    assert mask_url(text) == shown or " " in text


def test_a_password_with_a_space_is_masked_in_the_url_itself() -> None:
    assert mask_url("rtsp://admin:two words@h/s") == "rtsp://admin:***@h/s"


def test_a_logged_traceback_is_masked_too() -> None:
    import io
    import logging

    from livedream.runtime import MaskPasswords

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskPasswords())
    logger = logging.getLogger("livedream.test-masking")
    logger.addHandler(handler)
    try:
        try:
            raise SourceError(f"cannot open rtsp://me:{PASSWORD}@h/s?token={PASSWORD}")
        except SourceError as exc:
            logger.error("reading %s failed", f"http://h/v?pwd={PASSWORD}", exc_info=exc)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "rtsp://me:***@h/s?token=***" in text
    assert "http://h/v?pwd=***" in text and PASSWORD not in text


def test_an_unsupported_url_is_named_without_its_password() -> None:
    with pytest.raises(SourceError) as info:
        open_source(f"rtmp://me:{PASSWORD}@127.0.0.1/live")
    assert str(info.value).startswith("cannot open rtmp://me:***@127.0.0.1/live: rtmp:// is not")
    assert "rtsp://" in str(info.value)


def test_help_names_stream_urls() -> None:
    text = build_parser().format_help()
    assert "rtsp://" in text and "http://" in text


# --- the URL kept off the command line ----------------------------------------------------


def test_input_env_and_input_file_give_the_input(tmp_path: Path) -> None:
    url = f"rtsp://admin:{PASSWORD}@10.0.0.5/s"
    env = {"CAM": url, "LIVEDREAM_INPUT": url + "2"}
    assert parse_args(["--input-env", "CAM"], environ=env)[0].input == url
    assert parse_args(["--input-env"], environ=env)[0].input == url + "2"
    (tmp_path / "cam.txt").write_text(f"\n  {url}  \n# the camera\n")
    assert parse_args(["--input-file", str(tmp_path / "cam.txt")])[0].input == url
    assert parse_args([])[0].input == "0"  # the first webcam, as before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--input-env", "NO_SUCH_VAR"], "argument --input-env: the environment variable "),
        (["--input-file", "no-such-file.txt"], "argument --input-file: cannot read no-such-file"),
        (["--input-file", "empty.txt"], "argument --input-file: empty.txt is empty; expected"),
        (["-i", "0", "--input-env", "CAM"], "argument --input-env: not allowed with argument"),
    ],
)
def test_input_env_and_input_file_mistakes_are_one_line(
    args: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n")
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    assert main(args) == 2
    stderr = capsys.readouterr().err
    assert error_line(stderr).startswith(f"error: {says}"), stderr


@pytest.mark.parametrize("how", ["--input-env", "--input-file"])
def test_a_url_off_the_command_line_is_opened_and_never_shown(how: str, tmp_path: Path) -> None:
    port = refused_port()
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/s?pwd={PASSWORD}"
    (tmp_path / "cam.txt").write_text(url + "\n")
    given = ["--input-env", "CAM"] if how == "--input-env" else ["--input-file", "cam.txt"]
    result = subprocess.run(
        [sys.executable, "-m", "livedream", *given, "-o", "out.mp4", *FAST],
        capture_output=True,
        text=True,
        timeout=OPEN_ERROR_WITHIN,
        cwd=tmp_path,
        env={**os.environ, "CAM": url},
    )
    assert result.returncode == 2
    assert error_line(result.stderr).startswith(
        f"error: cannot open stream rtsp://admin:***@127.0.0.1:{port}/s?pwd=***: connection refused"
    )
    assert PASSWORD not in result.stdout + result.stderr


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


def test_video_at_a_url_rendered_to_a_file_has_every_frame(
    clip_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    code = main(["-i", clip_url, "-o", str(out), *FAST])
    output = capfd.readouterr().err
    assert code == 0, output
    assert "a video of 40 frames" in output
    assert count_frames(out) == 40


# --- opening that fails: one line, bounded, no password ----------------------------------


@pytest.mark.parametrize(
    ("login", "query", "verbose"),
    [
        (f"admin:{PASSWORD}@", "", False),
        (f"admin:{PASSWORD}/x@", f"?user=admin&pwd={PASSWORD}2", True),
        (f"{PASSWORD}@", f"?Access_Token={PASSWORD}2", True),  # a token as the user name
    ],
)
def test_refused_port_is_one_line_without_a_secret(
    login: str, query: str, verbose: bool, tmp_path: Path
) -> None:
    port = refused_port()
    url = f"rtsp://{login}127.0.0.1:{port}/stream1{query}"
    args = ["-i", url, "-o", str(tmp_path / "out.mp4"), *FAST]
    code, output, _ = livedream(*args, *(["--verbose"] if verbose else []))
    assert code == 2
    assert error_line(output) == (
        f"error: cannot open stream {mask_url(url)}: connection "
        f"refused by 127.0.0.1:{port}; is the camera (or phone app) streaming, and is the "
        "port right?"
    )
    assert "***@127.0.0.1" in output
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


def test_live_stream_run_never_prints_a_secret(
    camera: MjpegServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call.mp4"
    url = camera.url_with_login("me", PASSWORD) + f"?user=me&pwd={PASSWORD}&token={PASSWORD}"
    # --max-frames ends the live run by itself once 20 frames are recorded. In this process:
    # capfd holds file descriptors 1 and 2, where FFmpeg's own lines would go too.
    code = main(["-i", url, "-o", str(out), "--max-frames", "20", "--verbose", *FAST])
    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert code == 0, output
    assert PASSWORD not in output
    assert f"opened http://me:***@127.0.0.1:{camera.port}/video?user=me&pwd=***&token=***" in output
    assert count_frames(out) >= 20


def test_lost_stream_ends_the_run_with_the_recording_finalized(
    camera: MjpegServer, tmp_path: Path
) -> None:
    from livedream.args import parse_args

    out = tmp_path / "call.mp4"
    config, _ = parse_args(["-i", camera.url, "-o", str(out), "--no-preview", *FAST])
    source = StreamSource(camera.url, reconnect_for=1.0, **QUICK)
    run = stream_run(config, source, Console(stderr=True, force_terminal=False))

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
