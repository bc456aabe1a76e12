"""Deep renders spread with Ray: ``--workers 2`` embedded here (one worker killed mid-chunk),
and ``--cluster`` against a ``ray start --head`` on 127.0.0.1.

The tests share one xdist group, so they run one after another in one pytest worker: never two
Ray clusters at once on the test machine, and ``ray stop`` never hits a neighbour's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from avclips import make_clip, probe, two_shots
from helpers import LivedreamProcess, wait_for

from livedream.deep.store import chunk_folder

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

FRAMES, CUT = 30, 14
DREAM_FLAGS = ["--layers", "block3_conv3", "--precision", "float32", "--steps", "3"]
RAY = str(Path(sys.executable).with_name("ray"))
ENV = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    # The workers import this checkout's livedream, whatever is installed.
    "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    ),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 64x48 clip with sound and a scene cut at frame 14."""
    path = tmp_path_factory.mktemp("deep_ray") / "cut.mp4"
    return make_clip(path, frames=FRAMES, size=(64, 48), pictures=two_shots(CUT))


def busy_worker() -> int | None:
    """The pid of a Ray worker dreaming a chunk now (Ray titles it after the running call)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::ChunkWorker.dream"):
            return int(entry.name)
    return None


def assert_same_timing_and_sound(out: Path, clip: Path) -> None:
    got, want = probe(out), probe(clip)
    assert (got.width, got.height) == (want.width, want.height)
    assert got.average_rate == want.average_rate
    assert got.frame_times == pytest.approx(want.frame_times, abs=1e-3)
    assert got.audio_codecs == want.audio_codecs == ["aac"]
    assert got.audio_ends[0] == pytest.approx(want.audio_ends[0], abs=0.05)


def test_two_workers_keep_every_frame_even_when_one_is_killed_mid_chunk(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deep.mp4"
    render = LivedreamProcess(
        ["-i", str(clip), "-o", str(out), "--chunk-frames", "5", "--workers", "2", *DREAM_FLAGS]
    )
    try:
        folder = chunk_folder(out)
        wait_for(lambda: next(folder.glob("chunk-*.mkv"), None), 300, "a finished chunk")
        os.kill(wait_for(busy_worker, 120, "a worker inside a chunk"), signal.SIGKILL)
        assert render.wait(300) == 0, render.err
    finally:
        render.close()
    assert "a worker died while dreaming chunk" in render.err
    assert "dreamed 30 frames, reused 0" in render.err
    assert_same_timing_and_sound(out, clip)


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 started by ``ray start --head``, stopped by ``ray stop``."""
    if not shutil.which(RAY):
        pytest.skip("the ray command is not installed")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    start = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1"]
    start += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, env=ENV, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=120)


def test_a_cluster_dreams_the_chunks(clip: Path, tmp_path: Path, ray_head: str) -> None:
    out = tmp_path / "deep.mp4"
    cluster = ["--cluster", ray_head, "--workers", "2", "--chunk-frames", "10", *DREAM_FLAGS]
    result = subprocess.run(
        [sys.executable, "-m", "livedream", "-i", str(clip), "-o", str(out), *cluster],
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"2 Ray workers on the cluster at {ray_head}" in result.stderr
    assert "dreamed 30 frames, reused 0" in result.stderr
    assert not chunk_folder(out).exists()
    assert_same_timing_and_sound(out, clip)
