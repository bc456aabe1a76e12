"""The run itself: a photo dreamed in octaves, or a stream through the pipeline to the outputs.

The main thread takes dreamed frames from the pipeline and writes them to every output (the
preview window among them: macOS requires windows on the main thread)::

    for frame in pipeline:
        outputs.write(frame.image, at=frame.captured, pts=frame.pts)
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.console import Console

from livedream.config import RunConfig, protecting
from livedream.control.bridge import ControlBridge
from livedream.control.looks import apply_look, looks_folder, save_now
from livedream.control.session import ControlSession
from livedream.controls import Controls
from livedream.dream import Dreamer
from livedream.faces import FaceTracker, HaarDetector, protect_photo
from livedream.outputs import Outputs
from livedream.pipeline import Stats, make_pipeline
from livedream.plan import RunPlan
from livedream.preview import KeyHandler, PreviewWindow, describe_channels, loading_frame
from livedream.resolve import ResolvedDream
from livedream.runtime import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, Interrupts, print_error
from livedream.sinks import Sink
from livedream.sources import ImageSource, Source
from livedream.ui import StatusDisplay, hud_lines

log = logging.getLogger("livedream")

SLOW_HINT_AFTER = 20  # output frames into a live run: the dream's fps has settled by then
AUTO_HINT_AFTER = 300  # ~10 s at 30 fps: an automatic size has found its rung by then
SLOW_HINT_FPS = 8.0  # below this a live picture looks sluggish
# An automatic size still this far below its target after settling: the smallest size is too slow.
AUTO_HINT_SHARE = 0.8


def open_outputs(
    config: RunConfig,
    plan: RunPlan,
    source: Source,
    preview: Callable[[], Sink] | None = None,
) -> Outputs:
    """The outputs the output flags of ``config`` ask for, as ``plan`` runs them."""
    return Outputs.open(
        plan,
        source,
        output=config.output,
        overwrite=config.overwrite,
        quality=config.quality,
        virtual_cam=config.virtual_cam,
        preview=preview,
    )


def run_still(
    config: RunConfig,
    plan: RunPlan,
    dream: ResolvedDream,
    source: ImageSource,
    console: Console,
    interrupts: Interrupts | None = None,
) -> int:
    """A photo to an image file: octaves, the classic look.

    Ctrl-C while dreaming stops at once and writes nothing; once the picture is dreamed it is
    saved whatever comes.
    """
    from livedream.dream import dream_image
    from livedream.limits import still_max_side

    detector = HaarDetector() if plan.protects_faces else None  # fails before the dream
    with open_outputs(config, plan, source) as outputs:
        with console.status("dreaming the photo in octaves..."):
            side = still_max_side(source.width, source.height)  # smaller if memory is short
            image = dream_image(source.image, dream, max_side=side)
            image = protect_photo(source.image, image, plan.face_strength, detector)
        if interrupts is not None:
            interrupts.defer()
        outputs.write(image)
    if interrupts is not None and interrupts.requested.is_set():
        return EXIT_INTERRUPTED
    return EXIT_OK


class StreamRun:
    """A stream (webcam, video file, photo shown live) through the pipeline to the outputs.

    Args:
        config: the run's flags (outputs, ``--mirror``, ``--hud``).
        source: the opened input; closed when the run ends.
        console: where the status table or progress bar goes.
        plan: decided by ``plan_run``.
        dream: decided by ``resolve_dream``.
    """

    def __init__(
        self,
        config: RunConfig,
        source: Source,
        console: Console,
        *,
        plan: RunPlan,
        dream: ResolvedDream,
    ) -> None:
        self.source = source
        self.console = console
        self.plan = plan
        self.dream = dream
        self.controls = Controls.from_dream(
            dream, mirror=config.mirror, face_strength=plan.face_strength
        )
        if config.control.look is not None:
            apply_look(config.control.look, self.controls)
        self.keys = KeyHandler(
            self.controls,
            list(dream.layer_presets),
            hud=config.hud,
            channel_presets=list(dream.channel_presets),
            save_look=partial(save_now, self.controls),
        )
        self.pipeline = make_pipeline(
            source,
            _make_dreamer(dream),
            live=self.plan.live,
            pace_fps=self.plan.pace_fps,
            controls=self.controls,
            max_frames=self.plan.max_frames,
            dream_every=self.plan.dream_every,
            faces=FaceTracker() if self.plan.protects_faces else None,
        )
        self.outputs = open_outputs(config, plan, source, preview=self._window)
        self.bridge = ControlBridge(
            self.controls,
            self.keys,
            self.pipeline.stats,
            spec=dream.spec,
            frame_size=(source.width, source.height),
            start_size=dream.size.size_for(source.width, source.height),
            looks_folder=looks_folder(),
            screenshot_folder=Path.cwd(),
            face_tracking=self.plan.protects_faces,
        )
        self.control = ControlSession(config.control, self.bridge, console)

    def _window(self) -> Sink:
        return PreviewWindow(
            "livedream",
            keys=self.keys,
            overlay=lambda: hud_lines(self.stats, self.info()),
            loading=loading_frame(self.source.width, self.source.height),
        )

    @property
    def stats(self) -> Stats:
        return self.pipeline.stats

    def info(self) -> dict[str, str]:
        """The rows of the status table and the overlay: what is dreamed, as the keys set it."""
        source, dream, c = self.source, self.dream, self.controls
        w, h = self.stats.dream_size or dream.size.size_for(source.width, source.height)
        how = f" (auto, for {c.dream_rate:g} dreams/s)" if c.size_follows_machine else ""
        return {
            "input": f"{source.name} {source.width}x{source.height} @ {source.fps:.3g} fps"
            + (f", {source.status}" if source.status else ""),
            "model": dream.model_row(c.layers),
            "dream": f"{w}x{h}{how}, {c.steps} steps of {c.step_size:.4f}, "
            f"flow {'on' if c.flow else 'off'}, {dream.precision}, {dream.compile_mode}"
            + ("" if c.enabled else ", off"),
            "faces": self._faces_row(),
            **self._look(),
        }

    def _look(self) -> dict[str, str]:
        """The ``look`` row (channels, guide) once either is in play; none otherwise."""
        c, guide = self.controls, self.dream.guide_name
        if not c.channels and guide is None:
            return {}
        text = f"channels {describe_channels(c.channels)}"
        if guide is not None:
            text += f", guide {guide} {'on' if c.guide else 'off'}"
        return {"look": text}

    def _faces_row(self) -> str:
        c = self.controls
        if not protecting(c.face_strength):
            return "not protected (--face-strength 1)"
        if not c.faces:
            return "protection off (k)"
        return f"{self.stats.faces} protected, {c.face_strength:.2f} of the dream kept"

    def run(self, interrupts: Interrupts | None = None) -> int:
        """Runs until the input ends, the user quits, an error or an interrupt; returns the code.

        Whatever ends the run, every frame already dreamed reaches the outputs and the files
        are finalized before this returns or raises.

        Raises:
            LivedreamError: the input was lost or the dream failed (outputs finalized first).
        """
        if interrupts is None:
            with Interrupts() as own:
                return self.run(own)
        pipeline, outputs = self.pipeline, self.outputs
        display = StatusDisplay(self.console, total=self.plan.total, info=self.info)
        interrupts.defer(pipeline.done.set)
        try:
            if not interrupts.requested.is_set():
                self.control.start()
                pipeline.start()
                self._wait_for_model(interrupts)
                with display:
                    self._loop(display)
                    pipeline.stop()  # the threads end; what they already dreamed stays queued
                    limit = self.plan.frame_cap
                    while limit is None or self.stats.output < limit:
                        if (frame := pipeline.next_frame(0)) is None:
                            break
                        outputs.write(frame.image, at=frame.captured, pts=frame.pts)
                    display.close(self.stats)  # the last state: a finished bar reads 100%
        finally:
            pipeline.stop()
            outputs.close()
            self.control.close()
        self._report()
        if interrupts.requested.is_set():
            return EXIT_INTERRUPTED
        if pipeline.error is not None:
            raise pipeline.error
        if self.source.damage_message:
            print_error(self.console, self.source.damage_message)
            return EXIT_ERROR
        if outputs.failures:
            print_error(
                self.console, f"{outputs.failures[0]}; the other outputs went on to the end"
            )
            return EXIT_ERROR
        return EXIT_OK

    def _wait_for_model(self, interrupts: Interrupts) -> None:
        with self.console.status(f"loading {self.dream.spec.name} and compiling the dream..."):
            while not self.pipeline.ready.wait(0.03) and not interrupts.requested.is_set():
                self.outputs.idle()
                if self.outputs.stop_requested:  # q or the window closed while loading
                    self.pipeline.done.set()
                    return

    def _loop(self, display: StatusDisplay) -> None:
        pipeline, outputs, stats = self.pipeline, self.outputs, self.stats
        max_frames = self.plan.frame_cap

        def idle() -> None:  # while the dream works on the next frame
            outputs.idle()
            display.update(stats)
            if outputs.stop_requested:
                pipeline.done.set()

        pipeline.on_idle = idle
        for frame in pipeline:
            outputs.write(frame.image, at=frame.captured, pts=frame.pts)
            self.bridge.offer(frame.image)  # a reference: the page encodes it in its own thread
            display.update(stats)
            if stats.output == self._hint_after and self.plan.live:
                self._hint_if_slow()
            if outputs.stop_requested or (max_frames is not None and stats.output >= max_frames):
                return

    @property
    def _hint_after(self) -> int:
        """Output frames into a live run when the dream's speed is judged (once)."""
        return AUTO_HINT_AFTER if self.controls.size_follows_machine else SLOW_HINT_AFTER

    def _hint_if_slow(self) -> None:
        """Once, early in a live run: says how to go faster when the dream is slow here."""
        seconds = self.stats.dream_seconds
        if not seconds:
            return
        # The last few keyframes (right even below 1 a second): the size they were dreamed at.
        rate = 1.0 / max(1e-6, statistics.median(list(seconds)[-5:]))
        c = self.controls
        if c.size_follows_machine:  # the size adapts already: fewer steps or a lower rate help
            if rate < AUTO_HINT_SHARE * c.dream_rate:
                log.info(
                    "dreaming %.1f times a second on this machine, below the %g asked, even at "
                    "the smallest dream size; --steps 1 or a lower --dream-rate is faster",
                    rate,
                    c.dream_rate,
                )
        elif rate < SLOW_HINT_FPS:
            log.info(
                "dreaming at %.1f fps on this machine; --dream-size auto (the size follows the "
                "machine), --dream-size 240x180 or --steps 1 is faster (the README's "
                "Performance section tells how to measure)",
                rate,
            )

    def _report(self) -> None:
        stats = self.stats
        log.info(
            "%d frames out (%d dreamed, %d dropped), latency p50 %.0f ms, p95 %.0f ms",
            stats.output,
            stats.dreamed,
            stats.dropped,
            stats.latency_ms(0.5),
            stats.latency_ms(0.95),
        )


def _make_dreamer(dream: ResolvedDream) -> Callable[[], Dreamer]:
    def make() -> Dreamer:
        return Dreamer(dream)

    return make
