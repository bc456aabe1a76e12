"""``livedream --get-weights``: a planted file served from 127.0.0.1 lands in Keras' cache under
Keras' name, checked by its hash, with a progress bar; offline, damaged, broken off or
interrupted, one line and nothing left behind. No test touches the network."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import os
import signal
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from netserve import SilentServer, refused_port
from rich.console import Console

from livedream import weights
from livedream.cli import main
from livedream.errors import DownloadError, OfflineError
from livedream.weights import KERAS_WEIGHTS, get_weights, have_weights

INCEPTION = KERAS_WEIGHTS["inception_v3"].filename


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: WeightsServer = self.server.owner  # type: ignore[attr-defined]
        server.requests += 1
        if server.mode == "missing":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(server.data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if server.mode == "whole":
            self.wfile.write(server.data)
            return
        self.wfile.write(server.data[: len(server.data) // 2])
        self.wfile.flush()
        server.half_sent.set()
        if server.mode == "half-hang":
            server.closing.wait(30)  # connected, the rest never comes


class WeightsServer:
    """Serves ``data`` on 127.0.0.1 as a weights host does, or misbehaves on purpose.

    ``mode``: ``whole`` (200 and every byte), ``half-close`` (promises every byte, sends half,
    closes), ``half-hang`` (sends half, sets ``half_sent``, then waits), ``missing`` (404).
    """

    def __init__(self, data: bytes, mode: str = "whole") -> None:
        self.data, self.mode = data, mode
        self.requests = 0
        self.half_sent, self.closing = threading.Event(), threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{INCEPTION}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> WeightsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras home of this test's own; proxies off, so 127.0.0.1 is reached directly."""
    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # urlopen's opener reads the proxies once, at the first download in the process: one an
    # earlier test built under a fake proxy (test_models' offline test) would still use it.
    monkeypatch.setattr(urllib.request, "_opener", None)
    return home


@pytest.fixture
def planted() -> bytes:
    return os.urandom(300_000)  # a stand-in for the weights: nobody here can fetch the real ones


@pytest.fixture
def served(planted: bytes) -> Iterator[WeightsServer]:
    with WeightsServer(planted) as server:
        yield server


def recording_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def said(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_urls_names_and_hashes_are_the_installed_keras_own() -> None:
    spec = importlib.util.find_spec("keras")  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations
    apps = Path(next(iter(spec.submodule_search_locations))) / "src" / "applications"
    for model, ours in KERAS_WEIGHTS.items():
        tree = ast.parse((apps / f"{model}.py").read_text())
        constants = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        }
        (call,) = (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Name)
            and node.args[1].id == "WEIGHTS_PATH_NO_TOP"
        )
        keywords = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        assert ours.url == constants["WEIGHTS_PATH_NO_TOP"]
        assert ours.filename == ast.literal_eval(call.args[0])
        assert ours.file_hash == keywords["file_hash"]
        assert keywords["cache_subdir"] == "models"


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_the_file_lands_under_keras_name_with_a_full_progress_bar(
    keras_home: Path, planted: bytes, served: WeightsServer, algorithm: str
) -> None:
    console = recording_console()
    assert not have_weights("inception_v3")
    digest = hashlib.new(algorithm, planted).hexdigest()

    fetched = get_weights("inception_v3", url=served.url, file_hash=digest, console=console)

    assert fetched.path == keras_home / "models" / INCEPTION
    assert fetched.path.read_bytes() == planted
    assert (fetched.downloaded, fetched.algorithm, fetched.size) == (True, algorithm, 300_000)
    assert os.listdir(keras_home / "models") == [INCEPTION]  # no partial file left beside it
    assert have_weights("inception_v3") and not have_weights("vgg16")
    text = said(console)
    assert "downloading the inception_v3 weights (about 87 MB) from 127.0.0.1:" in text
    assert "100% 300.0/300.0 kB" in text  # the bar reached the end, in bytes


def test_a_second_call_finds_the_file_and_downloads_nothing(
    keras_home: Path, planted: bytes, served: WeightsServer
) -> None:
    md5 = hashlib.md5(planted).hexdigest()
    first = get_weights("inception_v3", url=served.url, file_hash=md5)
    before = first.path.stat().st_mtime_ns
    console = recording_console()

    again = get_weights("inception_v3", url=served.url, file_hash=md5, console=console)

    assert again == weights.Fetched(first.path, "md5", downloaded=False, size=300_000)
    assert served.requests == 1
    assert first.path.stat().st_mtime_ns == before
    assert said(console) == ""


def test_a_damaged_file_in_the_cache_is_downloaded_again(
    keras_home: Path, planted: bytes, served: WeightsServer
) -> None:
    target = keras_home / "models" / INCEPTION
    target.parent.mkdir(parents=True)
    target.write_bytes(planted[:1000])  # what an interrupted copy by hand leaves
    console = recording_console()
    md5 = hashlib.md5(planted).hexdigest()

    fetched = get_weights("inception_v3", url=served.url, file_hash=md5, console=console)

    assert fetched.downloaded and target.read_bytes() == planted
    assert f"{target} does not match Keras' published md5: downloading" in said(console)


def test_a_wrong_hash_is_refused_in_one_line_and_leaves_nothing(
    keras_home: Path, served: WeightsServer
) -> None:
    expected = "0" * 32
    with pytest.raises(DownloadError) as caught:
        get_weights("inception_v3", url=served.url, file_hash=expected)
    message = str(caught.value)
    assert "\n" not in message
    assert f"downloaded {INCEPTION} does not match Keras' published md5 {expected}" in message
    assert "damaged or intercepted; run the command again" in message
    assert os.listdir(keras_home / "models") == []
    assert not have_weights("inception_v3")


def test_a_download_that_breaks_off_says_how_far_it_got(keras_home: Path, planted: bytes) -> None:
    with WeightsServer(planted, mode="half-close") as server, pytest.raises(DownloadError) as e:
        get_weights("inception_v3", url=server.url, file_hash=hashlib.md5(planted).hexdigest())
    assert "broke off after 0.1 of 0.3 MB" in str(e.value)
    assert "run the command again" in str(e.value)
    assert os.listdir(keras_home / "models") == []


def test_a_server_that_says_nothing_is_given_up_on_as_offline(keras_home: Path) -> None:
    with SilentServer() as silent, pytest.raises(OfflineError) as caught:
        get_weights("vgg16", url=f"http://127.0.0.1:{silent.port}/w.h5", timeout=0.3)
    message = str(caught.value)
    assert f"from 127.0.0.1:{silent.port} (no answer in 0.3 s)" in message
    assert "machine seems offline; `--model vgg16_hed` works offline" in message
    assert os.listdir(keras_home / "models") == []


def test_a_missing_file_on_the_server_names_the_http_status(
    keras_home: Path, planted: bytes
) -> None:
    with WeightsServer(planted, mode="missing") as server, pytest.raises(DownloadError) as e:
        get_weights("inception_v3", url=server.url)
    assert "the server answered HTTP 404 Not Found; check the URL" in str(e.value)


def test_the_command_offline_is_one_line_and_exit_1(
    keras_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{refused_port()}/{INCEPTION}"

    code = main(["--get-weights", "inception_v3", "--weights-url", url])

    err = capsys.readouterr().err
    (line,) = (line for line in err.splitlines() if line.startswith("error:"))
    assert code == 1
    assert "could not download the inception_v3 weights from 127.0.0.1:" in line
    assert "(connection refused): the machine seems offline; `--model vgg16_hed` works" in line
    assert "Traceback" not in err
    assert os.listdir(keras_home / "models") == []


def test_the_command_interrupted_removes_its_partial_file_and_exits_130(
    keras_home: Path, planted: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    with WeightsServer(planted, mode="half-hang") as server:

        def press_ctrl_c() -> None:
            if server.half_sent.wait(20):  # half the file is on its way: mid-download
                signal.pthread_kill(main_thread, signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c, daemon=True)
        presser.start()
        code = main(["--get-weights", "inception_v3", "--weights-url", server.url])
        presser.join(5)
    assert server.half_sent.is_set()
    assert code == 130
    assert os.listdir(keras_home / "models") == []
    assert "Traceback" not in capsys.readouterr().err


def test_the_command_says_when_there_is_nothing_to_do(
    keras_home: Path, planted: bytes, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # The real file cannot be had here: a planted one, with Keras' hash set to the planted's.
    spec = KERAS_WEIGHTS["vgg16"]
    planted_hash = hashlib.md5(planted).hexdigest()
    monkeypatch.setitem(KERAS_WEIGHTS, "vgg16", replace(spec, file_hash=planted_hash))
    (keras_home / "models").mkdir(parents=True)
    (keras_home / "models" / spec.filename).write_bytes(planted)

    code = main(["--get-weights", "vgg16", "--weights-url", f"http://127.0.0.1:{refused_port()}/"])

    assert code == 0
    assert "is already there and its md5 matches Keras' published hash: nothing to do" in (
        capsys.readouterr().err
    )


def test_keras_finds_the_file_and_does_not_download_it_again(
    keras_home: Path, planted: bytes, served: WeightsServer
) -> None:
    import keras

    fetched = get_weights(
        "inception_v3", url=served.url, file_hash=hashlib.md5(planted).hexdigest()
    )
    # Keras reads KERAS_HOME once, at its import (maybe before this test): its cache_dir is
    # the same folder said explicitly. With file_hash=None Keras takes a file it finds as is;
    # the origin refuses connections, so a download would fail.
    found = keras.utils.get_file(
        INCEPTION,
        origin=f"http://127.0.0.1:{refused_port()}/{INCEPTION}",
        cache_subdir="models",
        cache_dir=str(keras_home),
        file_hash=None,
    )
    assert Path(found) == fetched.path
    assert Path(found).read_bytes() == planted


def test_the_cache_folder_is_keras_home_models(
    keras_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert weights.keras_models_dir() == keras_home / "models"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights.keras_models_dir() == tmp_path / ".keras" / "models"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--get-weights", "vgg16_hed"], "--get-weights: invalid choice: 'vgg16_hed'"),
        (
            ["--get-weights", "vgg16", "--weights-url", "ftp://mirror/w.h5"],
            "--weights-url: expected an http:// or https:// URL, got 'ftp://mirror/w.h5'",
        ),
        (  # a mirror given to a dream run would otherwise be ignored without a word
            ["-i", "clip.mp4", "--weights-url", "https://mirror.example/w.h5"],
            "--weights-url: it says where --get-weights downloads from, and no --get-weights",
        ),
    ],
)
def test_bad_weights_flags_exit_2_with_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_have_weights_looks_and_verify_checks_keras_hash(
    keras_home: Path, planted: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = keras_home / "models" / INCEPTION
    assert not have_weights("inception_v3", verify=True)
    target.parent.mkdir(parents=True)
    target.write_bytes(planted)  # there, but not Keras' file (the real one cannot be had here)
    assert have_weights("inception_v3")
    assert not have_weights("inception_v3", verify=True)
    spec = KERAS_WEIGHTS["inception_v3"]
    planted_hash = hashlib.md5(planted).hexdigest()
    monkeypatch.setitem(KERAS_WEIGHTS, "inception_v3", replace(spec, file_hash=planted_hash))
    assert have_weights("inception_v3", verify=True)
