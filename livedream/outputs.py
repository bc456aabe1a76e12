"""The run's outputs: every sink opened from the plan, and the one place that decides what a
sink's trouble means for the run.

- A virtual camera that fails mid-run is reported, dropped, and the run goes on (exit code 1 at
  the end); with nothing else left to show the dream on, the run ends.
- A file that cannot be written stops the run (``OutputWriteError``, exit code 1).
- Closing the preview window (or ``q``) ends the run normally (exit code 0).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from livedream.encode import DEFAULT_QUALITY
from livedream.errors import VirtualCameraError
from livedream.media import Frame
from livedream.plan import RunPlan
from livedream.sinks import ImageFileSink, Sink, VideoFileSink, VirtualCameraSink
from livedream.sources import Source, VideoFileSource

log = logging.getLogger(__name__)

# A pyvirtualcam backend name, e.g. obs: one backend instead of trying each (README, Virtual
# camera); the tests point it at a fake backend.
VCAM_BACKEND_ENV = "LIVEDREAM_VCAM_BACKEND"


class Outputs:
    """The sinks of one run, written together. A context manager; ``close()`` is idempotent.

    Args:
        sinks: opened sinks; closed by ``close()``.
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.failures: list[str] = []  # why a sink stopped mid-run, one line each

    @classmethod
    def open(
        cls,
        plan: RunPlan,
        source: Source,
        *,
        output: Path | None = None,
        overwrite: bool = False,
        quality: int = DEFAULT_QUALITY,
        virtual_cam: str | None = None,
        preview: Callable[[], Sink] | None = None,
    ) -> Outputs:
        """Opens what ``plan`` and the output flags ask for; closes what opened when one fails.

        Args:
            plan: still or stream, the fps, the preview, real-time recording.
            source: the opened input (its size, and its sound for a video file).
            output: ``--output``: an image (a still plan) or video file; None: none.
            overwrite: ``--overwrite`` an existing file.
            quality: ``--quality``, x264's CRF scale.
            virtual_cam: ``--virtual-cam``: None off, "" the first free device, else a path.
            preview: builds the preview window, when the plan shows one.
        """
        sinks: list[Sink] = []
        try:
            if plan.preview and preview is not None:
                sinks.append(preview())
            if output is not None:
                if plan.still:
                    sinks.append(ImageFileSink(output, overwrite=overwrite))
                else:
                    sinks.append(
                        VideoFileSink(
                            output,
                            width=source.width,
                            height=source.height,
                            fps=plan.fps,
                            overwrite=overwrite,
                            realtime=plan.realtime_recording,
                            quality=quality,
                            # The input's sound goes along (none from a camera or a photo).
                            audio_from=source.path if isinstance(source, VideoFileSource) else None,
                        )
                    )
            if virtual_cam is not None:
                sinks.append(
                    VirtualCameraSink(
                        width=source.width,
                        height=source.height,
                        fps=plan.fps,
                        device=virtual_cam or None,
                        backend=os.environ.get(VCAM_BACKEND_ENV) or None,
                    )
                )
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        return cls(sinks)

    @property
    def stop_requested(self) -> bool:
        """True once a sink asked to end the run (the preview window closed, ``q``)."""
        return any(sink.wants_stop for sink in self.sinks)

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Writes ``frame`` to every sink, then applies the failure policy.

        Raises:
            OutputWriteError: a file could not be written (the run stops).
            VirtualCameraError: the virtual camera failed and nothing else shows the dream.
        """
        for sink in self.sinks:
            sink.write(frame, at=at, pts=pts)
        self._drop_failed()

    def idle(self) -> None:
        """Lets every sink work while the run waits for a frame (the window stays responsive)."""
        for sink in self.sinks:
            sink.idle()

    def _drop_failed(self) -> None:
        for sink in [s for s in self.sinks if s.failure]:
            # The sink has warned already; the run goes on and ends with exit code 1.
            self.failures.append(sink.failure)
            self.sinks.remove(sink)
            sink.close()
            if not self.sinks:
                raise VirtualCameraError(
                    f"{sink.failure}, and nothing else shows the dream; check the virtual camera "
                    "(is another app holding it? was the loopback driver unloaded?) and start again"
                )

    def close(self) -> None:
        """Finalizes every output; the first close error is raised after all were tried."""
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # finalize the others before reporting it
                error = error or exc
        if error is not None:
            raise error

    def __enter__(self) -> Outputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
