"""The control page's section of ``fps.py`` (issue 19): output and dream fps with a live viewer
and without, in one run.

The clip as a ``LIVE_PACE_FPS`` camera (``live.CameraClip``) through ``Pipeline(..., live=True)``
with its ``Controls``, the output loop handing each frame to a ``ControlBridge`` as ``run.py``
does, and a ``ControlServer`` on 127.0.0.1. Stretches of ``STRETCH_SECONDS`` alternate without
a viewer and with one reading the MJPEG live view as fast as it comes (connecting at the
stretch's start and vanishing at its end), ``ROUNDS`` times, so that a change in the machine's
load hits both alike. A stretch goes on until it holds ``MIN_KEYFRAMES`` keyframes (on a slow
machine). Each figure is frames over seconds, summed over its stretches. Issue 19's bar: with
a viewer, output fps >= 0.95 x the camera's and dream fps >= 0.9 x without one.

Not run on its own: see ``fps.py``.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass

import numpy as np

from live import CameraClip
from machine import read_frames
from settings import LIVE_PACE_FPS, Settings

STRETCH_SECONDS, STRETCH_SECONDS_QUICK = 5.0, 3.0
ROUNDS, ROUNDS_QUICK = 3, 2
MIN_KEYFRAMES = 4  # a stretch goes on until it holds this many keyframes (a slow machine)
MAX_STRETCH = 30.0  # seconds, at most
MODEL_WAIT = 180.0  # seconds the first keyframe may take (model build and trace)


@dataclass
class ControlFigures:
    """Output and dream fps without a viewer and with one (the ``control_viewer`` key)."""

    camera_fps: float  # the pace asked of the camera-like source
    output_fps_no_viewer: float
    output_fps_viewer: float
    dream_fps_no_viewer: float
    dream_fps_viewer: float
    output_fps_viewer_ratio: float  # output_fps_viewer / camera_fps (bar: >= 0.95)
    dream_fps_viewer_ratio: float  # dream_fps_viewer / dream_fps_no_viewer (bar: >= 0.9)
    live_view_fps: float  # pictures the viewer received a second (the page caps it at 15)
    stretches: int  # of each kind
    stretch_seconds: float


def _view(port: int, stop: threading.Event, received: list[int]) -> None:
    """A viewer: reads the MJPEG live view until ``stop``, then vanishes (closes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/live.mjpg")
        response = conn.getresponse()
        while not stop.is_set():
            line = response.readline()
            if not line:
                return
            if line.startswith(b"Content-Length:"):
                response.readline()
                response.read(int(line.split(b":")[1]))
                received[0] += 1
    except OSError:
        return
    finally:
        conn.close()


def measure_control(settings: Settings) -> ControlFigures:
    """Runs the stretches (see the module's docstring) and returns their figures."""
    from livedream.control.bridge import ControlBridge
    from livedream.control.config import Bind
    from livedream.control.server import ControlServer
    from livedream.controls import Controls
    from livedream.dream import Dreamer
    from livedream.models import get_spec
    from livedream.pipeline import LivePipeline, Stats
    from livedream.preview import KeyHandler
    from livedream.resolve import resolve_here
    from livedream.sinks import NullSink

    clip, _ = read_frames(settings.clip, 300)
    source = CameraClip(clip, LIVE_PACE_FPS)
    config = settings.dream_config()
    dream = resolve_here(config)
    size = config.size.size_for(source.width, source.height)

    def make_dreamer() -> Dreamer:
        dreamer = Dreamer(dream)
        blank = np.zeros((size[1], size[0], 3), np.float32)
        dreamer.step(blank, steps=config.steps, step_size=config.step_size * 255.0)  # trace
        return dreamer

    controls = Controls(
        steps=config.steps, step_size=config.step_size, flow=True, layers=settings.layers
    )
    keys = KeyHandler(controls, list(get_spec(settings.model).presets))
    stats = Stats()
    pipeline = LivePipeline(source, make_dreamer, stats=stats, controls=controls)
    bridge = ControlBridge(
        controls,
        keys,
        stats,
        spec=get_spec(settings.model),
        frame_size=(source.width, source.height),
        start_size=size,
        looks_folder=settings.clip.parent,  # neither is written: no look, no screenshot
        screenshot_folder=settings.clip.parent,
        face_tracking=False,
    )
    seconds = STRETCH_SECONDS_QUICK if settings.quick else STRETCH_SECONDS
    rounds = ROUNDS_QUICK if settings.quick else ROUNDS
    totals = {False: [0.0, 0, 0], True: [0.0, 0, 0]}  # seconds, frames out, keyframes
    received = [0]
    with ControlServer(bridge, Bind("127.0.0.1", 0)) as server, pipeline, NullSink() as sink:

        def run_for(duration: float, keyframes: int = 0) -> None:
            begin, first = time.perf_counter(), stats.dreamed
            while (now := time.perf_counter()) < begin + duration or (
                stats.dreamed - first < keyframes and now < begin + MAX_STRETCH
            ):
                item = pipeline.next_frame(0.5)
                if item is None:
                    if pipeline.ended:
                        raise RuntimeError("the clip ended during the control section")
                    continue
                sink.write(item.image)
                bridge.offer(item.image)

        deadline = time.perf_counter() + MODEL_WAIT
        while stats.dreamed == 0 and time.perf_counter() < deadline:
            run_for(0.2)
        run_for(1.0)  # settle
        for _ in range(rounds):
            for viewer in (False, True):
                stop = threading.Event()
                thread = threading.Thread(
                    target=_view, args=(server.port, stop, received), daemon=True
                )
                if viewer:
                    thread.start()
                start = (time.perf_counter(), stats.output, stats.dreamed)
                run_for(seconds, MIN_KEYFRAMES)
                total = totals[viewer]
                total[0] += time.perf_counter() - start[0]
                total[1] += stats.output - start[1]
                total[2] += stats.dreamed - start[2]
                stop.set()
                if viewer:
                    thread.join(5)
    if pipeline.error is not None:
        raise pipeline.error
    (t0, out0, dream0), (t1, out1, dream1) = totals[False], totals[True]
    return ControlFigures(
        camera_fps=LIVE_PACE_FPS,
        output_fps_no_viewer=out0 / t0,
        output_fps_viewer=out1 / t1,
        dream_fps_no_viewer=dream0 / t0,
        dream_fps_viewer=dream1 / t1,
        output_fps_viewer_ratio=out1 / t1 / LIVE_PACE_FPS,
        dream_fps_viewer_ratio=(dream1 / t1) / (dream0 / t0) if dream0 else float("nan"),
        live_view_fps=received[0] / t1,
        stretches=rounds,
        stretch_seconds=seconds,
    )
