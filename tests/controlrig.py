"""A live run with its control page, in this process, for the control page's tests.

A moving synthetic scene as a 15 fps camera, through the real ``Pipeline`` (live) with a real
``vgg16_hed`` dream at 64x48, its ``Controls`` and ``KeyHandler`` as ``run.py`` makes them, and
a ``ControlServer`` on 127.0.0.1 over the run's ``ControlBridge``. A consumer thread plays the
output loop: it offers each frame to the bridge and records its dream strength, the mean
|output - input| against the scene's own frame of that index.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livedream.config import DreamConfig
from livedream.control.bridge import ControlBridge
from livedream.control.config import Bind
from livedream.control.server import ControlServer
from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.models import get_spec
from livedream.pipeline import LivePipeline
from livedream.preview import KeyHandler
from livedream.resolve import resolve_here
from livedream.sources import SyntheticSource

RIG_DREAM = DreamConfig(
    model="vgg16_hed",  # the page's lists are this model's
    layers=("block2_conv2",),
    dream_size=(64, 48),
    precision="float32",
    blend=0.5,  # the dream settles within a few keyframes: a change shows quickly
)
RIG_FPS = 15.0


@dataclass
class Rig:
    """The running rig; ``strengths`` holds (time out, strength) of each dreamed output frame."""

    controls: Controls
    keys: KeyHandler
    bridge: ControlBridge
    pipeline: LivePipeline
    source: SyntheticSource
    server: ControlServer
    looks: Path
    shots: Path
    strengths: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=400))
    thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def strength_since(self, since: float, last: int = 8) -> float | None:
        """Mean strength of the last ``last`` dreamed frames out after ``since``; None: fewer."""
        recent = [s for t, s in list(self.strengths) if t > since][-last:]
        return float(np.mean(recent)) if len(recent) == last else None

    def consume(self) -> None:
        for frame in self.pipeline:
            self.bridge.offer(frame.image)
            if frame.dreamed:
                original = self.source.frame_at(frame.index)
                strength = float(np.abs(frame.image.astype(np.float32) - original).mean())
                self.strengths.append((time.perf_counter(), strength))


def start_rig(folder: Path) -> Rig:
    """Builds the run and starts it; the caller stops it with ``stop_rig``."""
    spec = get_spec(RIG_DREAM.model)
    controls = Controls(
        steps=RIG_DREAM.steps,
        step_size=RIG_DREAM.step_size,
        flow=True,
        layers=RIG_DREAM.layers,
        blend=RIG_DREAM.blend,
        dream_size=RIG_DREAM.dream_size,
    )
    presets = [RIG_DREAM.layers, *spec.presets]
    keys = KeyHandler(
        controls, presets, channel_presets=[(p.name, p.selection) for p in spec.channel_presets]
    )
    source = SyntheticSource(width=160, height=120, fps=RIG_FPS, live=True)
    dream = resolve_here(RIG_DREAM)  # before the pipeline starts, as run.py does
    pipeline = LivePipeline(
        source,
        lambda: Dreamer(dream),
        pace_fps=RIG_FPS,
        controls=controls,
        wait_for_dream=True,
    )
    looks, shots = folder / "config" / "livedream" / "looks", folder / "run"
    shots.mkdir(parents=True)
    bridge = ControlBridge(
        controls,
        keys,
        pipeline.stats,
        spec=get_spec(RIG_DREAM.model),
        frame_size=(source.width, source.height),
        start_size=dream.size.size_for(source.width, source.height),
        looks_folder=looks,
        screenshot_folder=shots,
        face_tracking=False,
    )
    server = ControlServer(bridge, Bind("127.0.0.1", 0)).start()
    rig = Rig(controls, keys, bridge, pipeline, source, server, looks, shots)
    rig.thread = threading.Thread(target=rig.consume, name="test-outputs", daemon=True)
    pipeline.start()
    rig.thread.start()
    return rig


def stop_rig(rig: Rig) -> None:
    rig.server.close()
    rig.pipeline.stop()
    if rig.thread is not None:
        rig.thread.join(5)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, bytes, http.client.HTTPMessage]:
    """One HTTP request to 127.0.0.1:``port`` with exactly these headers (``Host`` included)."""
    headers = {"Host": f"{host}:{port}", **(headers or {})}
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()
