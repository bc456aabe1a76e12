"""Deep renders spread with Ray: ``--workers 2`` with Ray embedded in the render (one worker
killed mid-chunk), and ``--cluster`` against a ``ray start --head`` on 127.0.0.1.

Every Ray here is private to its test, so the tests may run beside each other and beside any
other Ray on the machine (``pytest -n auto --dist worksteal`` spreads them over workers): each
has a home of its own (Ray keeps its cluster token in ``~/.ray``) and a Ray temp dir of its own
(``RAY_TMPDIR``; short, as Ray's socket paths must stay under 108 bytes), its ports are picked
free, an embedded Ray never joins another (``address="local"``), the worker killed is one of
this render's, and each Ray is ended by killing its own process group, never by ``ray stop``
(which stops every Ray on the machine). Usage statistics are off; the render's 2 TensorFlow
threads are shared out: 1 a worker. Every wait is a bound on a hang, far above what a loaded
2-core machine takes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from avclips import make_clip, probe, two_shots
from helpers import LivedreamProcess, wait_for

from livedream.deep.store import chunk_folder

pytest.importorskip("ray")

FRAMES, CUT = 30, 14
DREAM_FLAGS = ["--layers", "block3_conv3", "--precision", "float32", "--steps", "3"]
RAY = str(Path(sys.executable).with_name("ray"))
CHECKOUT = str(Path(__file__).parents[1])  # Ray's workers import this checkout's livedream


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 64x48 clip with sound and a scene cut at frame 14."""
    path = tmp_path_factory.mktemp("deep_ray") / "cut.mp4"
    return make_clip(path, frames=FRAMES, size=(64, 48), pictures=two_shots(CUT))


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def ray_env(home: Path, ray_temp: Path) -> dict[str, str]:
    """What a Ray run here gets on top of this process's environment (see the module)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "RAY_TMPDIR": str(ray_temp),
        "RAY_USAGE_STATS_ENABLED": "0",
        "TF_NUM_INTRAOP_THREADS": "2",  # shared out by the render: 1 a worker
        "PYTHONPATH": os.pathsep.join([CHECKOUT, os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }


def short_temp_dir() -> Path:
    """A Ray temp dir with a short path (pytest's tmp_path is too long for Ray's sockets)."""
    return Path(tempfile.mkdtemp(prefix="ldray-", dir="/tmp"))


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        up = parent(pid)
        if up is None:
            return False
        pid = up
    return False


def processes(match: Callable[[int, bytes], bool]) -> list[int]:
    """The live (not zombie) processes for which ``match(pid, cmdline)`` holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and match(int(entry.name), cmdline):
            found.append(int(entry.name))
    return found


def in_group(pgid: int) -> Callable[[int, bytes], bool]:
    def match(pid: int, cmdline: bytes) -> bool:
        try:
            return os.getpgid(pid) == pgid
        except OSError:
            return False

    return match


def end_group(pgid: int) -> None:
    """Kills process group ``pgid`` (a Ray and its workers) and waits until it is gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_for(lambda: not processes(in_group(pgid)), 60, f"process group {pgid} to end")


def busy_worker(render: LivedreamProcess) -> int | None:
    """The pid of one of ``render``'s Ray workers dreaming a chunk now (Ray titles a worker
    after the call it runs); fails at once if the render ended."""
    assert render.proc.poll() is None, render.err
    busy = processes(
        lambda pid, cmdline: (
            cmdline.startswith(b"ray::ChunkWorker.dream") and descends_from(pid, render.proc.pid)
        )
    )
    return busy[0] if busy else None


def assert_same_timing_and_sound(out: Path, clip: Path) -> None:
    got, want = probe(out), probe(clip)
    assert (got.width, got.height) == (want.width, want.height)
    assert got.average_rate == want.average_rate
    assert got.frame_times == pytest.approx(want.frame_times, abs=1e-3)
    assert got.audio_codecs == want.audio_codecs == ["aac"]
    assert got.audio_ends[0] == pytest.approx(want.audio_ends[0], abs=0.05)


def test_two_workers_keep_every_frame_even_when_one_is_killed_mid_chunk(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray_temp = short_temp_dir()
    for name, value in ray_env(tmp_path / "home", ray_temp).items():
        monkeypatch.setenv(name, value)  # the render's environment
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "deep.mp4"
    render = LivedreamProcess(
        ["-i", str(clip), "-o", str(out), "--chunk-frames", "5", "--workers", "2", *DREAM_FLAGS]
    )
    try:
        folder = chunk_folder(out)
        # When the first chunk (5 frames) is done, the other worker is halfway through its
        # chunk (5 frames after 5 of warm-up) and the first starts a third: one is always busy.
        wait_for(lambda: next(folder.glob("chunk-*.mkv"), None), 300, "a finished chunk")
        os.kill(wait_for(lambda: busy_worker(render), 120, "a worker in a chunk"), signal.SIGKILL)
        assert render.wait(300) == 0, render.err
    finally:
        render.close()
        end_group(render.proc.pid)  # Ray made the render its process group's leader
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert "2 Ray workers on this machine, 1 TensorFlow thread each" in render.err
    assert "a worker died while dreaming chunk" in render.err
    assert "dreamed 30 frames, reused 0" in render.err
    assert_same_timing_and_sound(out, clip)


def test_ctrl_c_stops_every_worker_and_the_next_run_reuses_the_finished_chunks(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray_temp = short_temp_dir()
    for name, value in ray_env(tmp_path / "home", ray_temp).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "deep.mp4"
    args = ["-i", str(clip), "-o", str(out), "--chunk-frames", "5", *DREAM_FLAGS]
    render = LivedreamProcess([*args, "--workers", "2"])
    folder = chunk_folder(out)
    try:
        wait_for(lambda: next(folder.glob("chunk-*.mkv"), None), 300, "a finished chunk")
        render.proc.send_signal(signal.SIGINT)
        assert render.wait(60) == 130, render.err  # a bound on a hang: the product says 5 s
        # Ray made the render its process group's leader: every worker of it has ended.
        wait_for(lambda: not processes(in_group(render.proc.pid)), 60, "the workers to end")
    finally:
        render.close()
        end_group(render.proc.pid)
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert "run the same command again to resume" in render.err
    assert not out.exists()
    kept = list(folder.glob("chunk-*.mkv"))
    assert kept
    # The same command again, here in one process (--workers may change between runs).
    second = LivedreamProcess(args)
    try:
        assert second.wait(300) == 0, second.err
    finally:
        second.close()
    dreamed, reused = (
        int(n) for n in re.findall(r"dreamed (\d+) frames, reused (\d+)", second.err)[-1]
    )
    assert reused >= 5 and dreamed + reused == FRAMES
    assert_same_timing_and_sound(out, clip)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head on 127.0.0.1 (``ray start --head --block``, 2 CPUs), started once for the
    module and ended by killing its process group: (its address, the environment to reach
    it with)."""
    if not Path(RAY).exists():
        pytest.skip("the ray command is not installed")
    ray_temp = short_temp_dir()
    env = {**os.environ, **ray_env(tmp_path_factory.mktemp("ray_head_home"), ray_temp)}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    start = [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"]
    start += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    start += [f"--ray-client-server-port={free_port()}"]
    start += [f"--dashboard-agent-listen-port={free_port()}"]
    log = ray_temp / "head.log"
    with open(log, "wb") as output:
        head = subprocess.Popen(
            start,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: ended as one
        )
    try:
        started = "Ray runtime started"
        wait_for(lambda: head.poll() is not None or started in log.read_text(), 180, started)
        assert head.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}", env
    finally:
        end_group(head.pid)
        head.wait(60)
        shutil.rmtree(ray_temp, ignore_errors=True)


def test_a_cluster_dreams_the_chunks(
    clip: Path, tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    out = tmp_path / "deep.mp4"
    cluster = ["--cluster", address, "--workers", "2", "--chunk-frames", "10", *DREAM_FLAGS]
    result = subprocess.run(
        [sys.executable, "-m", "livedream", "-i", str(clip), "-o", str(out), *cluster],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"2 Ray workers on the cluster at {address}, 1 TensorFlow thread each" in result.stderr
    assert "dreamed 30 frames, reused 0" in result.stderr
    assert not chunk_folder(out).exists()
    assert_same_timing_and_sound(out, clip)
