"""Stopping a run at any moment: Ctrl-C in the middle of a photo's octave, and the preview
window closed while the model is still loading (a first-run weights download that hangs)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import LivedreamProcess, XScreen, photo, wait_for
from netserve import SilentServer

# Seconds from the signal to the exit. One compiled call of a few steps lasts well under a
# second; the octave this test dreams is one call of 1000 steps (minutes) without the split.
STOP_WITHIN = 5.0


def wait_until_said(proc: LivedreamProcess, text: str, timeout: float = 120.0) -> None:
    wait_for(lambda: text in proc.err or proc.proc.poll() is not None, timeout, text)
    assert text in proc.err, proc.err


def test_ctrl_c_during_a_photos_octave_stops_it_at_once(tmp_path: Path) -> None:
    """SIGTERM takes the same path (``runtime.Interrupts``): one signal is tested."""
    photo(tmp_path / "photo.png", width=512, height=384)
    args = ["-i", "photo.png", "-o", "out.png", "--octaves", "1", "--octave-steps", "1000"]
    fast = ["--layers", "block1_conv1", "--precision", "float32", "--verbose"]
    proc = LivedreamProcess([*args, *fast], cwd=tmp_path)
    try:
        wait_until_said(proc, "octave 0 at 512x384: 1000 steps")
        wait_until_said(proc, "steps at 512x384: ")  # the first (compiling) call is done
        proc.proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        code = proc.wait(STOP_WITHIN)
        waited = time.monotonic() - signalled
    finally:
        proc.close()
    assert code == 130, proc.err
    assert waited < STOP_WITHIN
    assert not (tmp_path / "out.png").exists()  # stopped while dreaming: nothing written


def test_closing_the_window_while_the_model_loads_ends_the_run(
    x_screen: XScreen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run of --model vgg16 downloads its weights; here through a proxy that accepts
    and never answers, so the loading screen stays up until the window is closed."""
    photo(tmp_path / "photo.png")
    with SilentServer() as proxy:
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no weights cached
        args = ["-i", "photo.png", "--preview", "--model", "vgg16", "--layers", "block2_conv2"]
        run = LivedreamProcess([*args, "--dream-size", "64x48"], cwd=tmp_path)
        try:
            wait_for(lambda: proxy.accepted, 120.0, "the weights download to start")
            wait_for(lambda: x_screen.find_window("livedream") is not None, 30.0, "the window")
            x_screen.close_window("livedream")
            assert run.wait(30) == 0, run.err
        finally:
            run.close()
    assert "Traceback" not in run.err
