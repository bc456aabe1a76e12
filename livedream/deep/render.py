"""A deep render, start to end: the input's shots found, cut into chunks, the chunks not yet
finished dreamed (here, or by Ray workers), the output assembled and the chunk folder removed.

    livedream -i long.mp4 -o deep.mp4 --steps 100 --octaves 4 --chunk-frames 120 --workers 4

Interrupted (Ctrl-C, a crash, a killed machine), the same command resumes: finished chunks
are reused, the log says how many frames were dreamed and how many reused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from livedream.config import DeepConfig, DreamConfig, RunConfig
from livedream.deep.assemble import assemble
from livedream.deep.chunks import Chunk, CutFinder, chunk_frames, plan_chunks
from livedream.deep.store import ChunkStore
from livedream.deep.work import Job, LocalRunner
from livedream.plan import RunPlan
from livedream.resolve import Look
from livedream.runtime import EXIT_INTERRUPTED, EXIT_OK, Interrupts
from livedream.sources import Source, VideoFileSource

log = logging.getLogger("livedream")


# Dream settings that never change a deep render's pixels: why --model auto chose its model,
# and the rate an automatic size aims at (a deep render dreams at one fixed size).
NOT_PIXELS = ("model_why", "dream_rate")


def manifest(
    config: RunConfig, dream: DreamConfig, source: VideoFileSource, deep: DeepConfig
) -> dict[str, Any]:
    """What the chunks depend on: the input's identity and every setting that changes pixels
    (not ``--workers``, ``--cluster`` or ``--quality``: chunks are lossless). ``dream``: the
    checked look's settings (``--model auto`` decided), not the flags as typed."""
    path = source.path.resolve()
    stat = path.stat()
    pixels: dict[str, Any] = {"input": str(path), "input size": stat.st_size}
    pixels["input modified"] = stat.st_mtime_ns
    for key, value in asdict(dream).items():
        if key not in NOT_PIXELS:
            pixels[f"--{key.replace('_', '-')}"] = str(value) if isinstance(value, Path) else value
    for name in ("weights", "guide"):
        file = getattr(dream, name)
        if file is not None and Path(file).exists():
            pixels[f"--{name} modified"] = Path(file).stat().st_mtime_ns
    for key in ("octaves", "octave_steps", "chunk_frames", "warmup"):
        pixels[f"--{key.replace('_', '-')}"] = getattr(deep, key)
    pixels["--max-frames"] = config.max_frames
    return pixels


def find_shots(
    source: Source, size: tuple[int, int], limit: int | None
) -> tuple[list[int], list[float]]:
    """Reads ``source`` to its end (or ``limit`` frames): the frames starting a new shot and
    every frame's time in seconds."""
    finder = CutFinder(size)
    cuts: list[int] = []
    times: list[float] = []
    fps = source.fps or 25.0
    while limit is None or len(times) < limit:
        frame = source.read()
        if frame is None:
            break
        index = len(times)
        times.append(source.position if source.position is not None else index / fps)
        if finder.is_cut(frame, index):
            cuts.append(index)
    return cuts, times


def read_frames(path: Path, limit: int) -> Any:
    """The frames of the video at ``path``, in order, at most ``limit``."""
    with VideoFileSource(path) as source:
        for _ in range(limit):
            frame = source.read()
            if frame is None:
                return
            yield frame


class DeepRender:
    """One deep render of a video file into ``config.output``.

    Args:
        config: the run's flags; ``config.deep`` set.
        plan: decided by ``plan_run`` (fps, frame cap).
        look: the checked look.
        source: the opened input (read once here to find the shots).
        console: where the progress bar goes.
    """

    def __init__(
        self,
        config: RunConfig,
        plan: RunPlan,
        look: Look,
        source: VideoFileSource,
        console: Console,
    ) -> None:
        assert config.deep is not None and config.output is not None
        self.config, self.plan, self.look = config, plan, look
        self.deep: DeepConfig = config.deep
        self.output: Path = config.output
        self.source = source
        self.console = console
        self.dreamed = 0  # kept frames dreamed by this run
        self.reused = 0  # kept frames taken from chunks finished before

    def run(self, interrupts: Interrupts) -> int:
        """Renders (or resumes) to the end, or until ``interrupts`` asks to stop."""
        source, deep = self.source, self.deep
        pixels = manifest(self.config, self.look.settings, source, deep)
        with ChunkStore(self.output, pixels) as store:
            size = self.look.size.size_for(source.width, source.height)
            with self.console.status("finding the shots..."):
                cuts, times = find_shots(source, size, self.plan.max_frames)
            chunks = plan_chunks(
                len(times), cuts, chunk_frames=deep.chunk_frames, warmup=deep.warmup
            )
            finished = store.finished()
            todo = [c for c in chunks if c.number not in finished]
            self.reused = sum(c.frames for c in chunks if c.number in finished)
            log.info(
                "%d frames, %d shots, %d chunks of up to %d frames (%d warm-up); %s",
                len(times),
                len(cuts) + 1,
                len(chunks),
                deep.chunk_frames,
                deep.warmup,
                f"resuming: {len(chunks) - len(todo)} chunks finished already"
                if store.resumed
                else "chunks kept in " + str(store.folder),
            )
            wanted = {c.number for c in todo}
            jobs = chunk_frames(
                read_frames(source.path, len(times)), chunks, lambda c: c.number in wanted
            )
            if todo:
                self._dream(jobs, todo, store, interrupts.requested)
            if interrupts.requested.is_set() or {c.number for c in chunks} - store.finished():
                done = len(store.finished() & {c.number for c in chunks})
                log.info(
                    "stopped with %d of %d chunks finished, kept in %s: run the same command "
                    "again to resume (dreamed %d frames, reused %d)",
                    done,
                    len(chunks),
                    store.folder,
                    self.dreamed,
                    self.reused,
                )
                return EXIT_INTERRUPTED
            with self.console.status(f"assembling {self.output.name}..."):
                assemble(
                    store,
                    chunks,
                    times,
                    self.output,
                    read_frames(source.path, len(times)),
                    width=source.width,
                    height=source.height,
                    fps=self.plan.fps,
                    quality=self.config.quality,
                    overwrite=self.config.overwrite,
                    audio_from=source.path,
                )
            store.remove()
        log.info(
            "deep render done: dreamed %d frames, reused %d frames from finished chunks",
            self.dreamed,
            self.reused,
        )
        return EXIT_OK

    def _dream(
        self, jobs: Any, todo: list[Chunk], store: ChunkStore, stop: threading.Event
    ) -> None:
        deep = self.deep
        total = sum(c.frames for c in todo)
        running: dict[int, int] = {}
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task("dreaming", total=total)

            def report(number: int, frames: int) -> None:
                running[number] = frames
                bar.update(task, completed=self.dreamed + sum(running.values()))

            def save(chunk: Chunk, data: bytes) -> None:
                store.save(chunk.number, data)
                running.pop(chunk.number, None)
                self.dreamed += chunk.frames
                bar.update(task, completed=self.dreamed + sum(running.values()))

            if deep.workers > 1 or deep.cluster is not None:
                from livedream.deep.ray_runner import RayRunner

                with RayRunner(self.look, deep, cluster=deep.cluster) as runner:
                    runner.run(jobs, fps=self.plan.fps, save=save, report=report, stop=stop)
            else:
                self._local().run(jobs, fps=self.plan.fps, save=save, report=report, stop=stop)

    def _local(self) -> LocalRunner:
        from livedream.device import detect_device
        from livedream.resolve import resolve_dream
        from livedream.runtime import import_tensorflow

        with self.console.status(f"loading {self.look.spec.name} and compiling the dream..."):
            import_tensorflow(self.config.verbose)
            return LocalRunner(resolve_dream(self.look, detect_device()), self.deep)


def run_deep(
    config: RunConfig,
    plan: RunPlan,
    look: Look,
    source: VideoFileSource,
    console: Console,
    interrupts: Interrupts,
) -> int:
    """Runs the deep render ``plan_run`` decided on (see the module)."""
    assert config.deep is not None
    if config.deep.cluster is not None:  # before the chunk folder or the input's long scan
        from livedream.deep.ray_runner import check_reachable

        check_reachable(config.deep.cluster)
    interrupts.defer()  # from here on a signal asks for a clean stop
    return DeepRender(config, plan, look, source, console).run(interrupts)


__all__ = ["DeepRender", "Job", "manifest", "run_deep"]
