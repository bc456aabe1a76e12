"""Chunks dreamed in parallel by Ray workers: ``--workers N`` on this machine (Ray started
embedded and local, usage statistics off), or ``--cluster ADDRESS`` on a running cluster.

Each worker is an actor that builds the dream once and then dreams chunk after chunk. A
chunk's frames reach it through Ray's object store and its encoded segment comes back the same
way: no shared file system. A worker that dies (killed, out of memory) has its chunk handed to
a fresh worker; a chunk that kills ``MAX_ATTEMPTS`` workers ends the render. A stop request
kills every worker at once; the finished chunks are already in the chunk folder.

Ray is an optional extra: ``pip install 'livedream[cluster]'``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from livedream.config import DeepConfig
from livedream.errors import LivedreamError, UsageError
from livedream.resolve import Look

from .work import ChunkWorker, Job, Progress, Report, Save

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # an unreachable cluster is reported well within 10 s
POLL_S = 0.2  # the driver's loop: progress, stop requests, finished chunks
MAX_ATTEMPTS = 3  # workers a chunk may lose before the render gives up on it
TOKEN_FILE = Path("~/.ray/auth_token")  # where `ray start --head` keeps the cluster's token


class ClusterError(LivedreamError):
    """Ray is missing, the cluster cannot be reached, or a chunk keeps killing its workers."""


def import_ray() -> Any:
    """Ray, with its usage statistics off; ``ClusterError`` when it is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--workers and --cluster need Ray, which is not installed: "
            "pip install 'livedream[cluster]'"
        ) from None
    return ray


def local_cores() -> int:
    """The cores this machine's workers share: TensorFlow's own ``TF_NUM_INTRAOP_THREADS``
    where set (a shared host, or a test run, caps TensorFlow so), else the cores this process
    may run on. Each worker sets its threads itself, which would override that setting."""
    given = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cluster_token() -> None:
    """Asks Ray for token authentication (``RAY_AUTH_MODE=token``) when this machine holds a
    token (``RAY_AUTH_TOKEN`` or the file ``ray start`` writes), as ``ray start --head`` expects
    by default; Ray does so by itself only for ``address="auto"``."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or TOKEN_FILE.expanduser().exists():
        os.environ["RAY_AUTH_MODE"] = "token"


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raises ``ClusterError`` (one line) unless something listens at ``address`` (HOST:PORT
    or ray://HOST:PORT); ``auto`` is left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--cluster expects HOST:PORT of a Ray head (e.g. 10.0.0.5:6379), got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__.replace("Error", " error").lower()
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {reason}; start it there with "
            "`ray start --head --port=6379`, or check the address and the firewall"
        ) from None


class RayRunner:
    """Chunks dreamed by ``workers`` Ray actors. A context manager; ``close()`` is idempotent.

    Args:
        look: the checked look, sent to every worker (each resolves it for its own device).
        deep: the octaves and the number of workers.
        cluster: a Ray cluster's address; None: Ray embedded on this machine.
    """

    def __init__(self, look: Look, deep: DeepConfig, *, cluster: str | None = None) -> None:
        self.look = look
        self.deep = deep
        self.cluster = cluster
        self.workers = deep.workers
        self.lost = 0  # workers that died under a chunk
        self._ray: Any = None

    def start(self) -> RayRunner:
        """Starts Ray here, or joins the cluster."""
        if self.cluster is not None:
            use_cluster_token()  # before Ray is imported: it reads the mode once
        ray = import_ray()
        if self.cluster is not None:
            check_reachable(self.cluster)
            try:
                ray.init(address=self.cluster, log_to_driver=False, logging_level=logging.ERROR)
            except ConnectionError:
                raise ClusterError(
                    f"the Ray cluster at {self.cluster} did not let this machine in: give it "
                    f"the head's token (copy its {TOKEN_FILE} here or set RAY_AUTH_TOKEN) and "
                    "the same Ray version"
                ) from None
            if self.workers < 1:  # one worker a node unless --workers says
                self.workers = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        else:
            os.environ.pop("RAY_ADDRESS", None)  # embedded: never join a cluster by accident
            ray.init(
                # "local": a new Ray of its own, even where a `ray start` cluster runs here
                # (Ray would join the latest one it started otherwise)
                address="local",
                num_cpus=self.workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        self._ray = ray
        return self

    def _threads(self) -> int:
        """TensorFlow threads per worker: each node's cores shared out among its workers."""
        ray = self._ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if self.cluster is None or not nodes:
            return max(1, local_cores() // self.workers)
        per_node = -(-self.workers // len(nodes))
        cores = min(int(n.get("Resources", {}).get("CPU", 1)) for n in nodes)
        return max(1, cores // per_node)

    def _new_worker(self, threads: int, gpus: float) -> Any:
        ray = self._ray
        actor = ray.remote(ChunkWorker).options(num_cpus=1, num_gpus=gpus, max_restarts=0)
        return actor.remote(self.look, self.deep, threads)

    def run(
        self, jobs: Iterable[Job], *, fps: float, save: Save, report: Report, stop: threading.Event
    ) -> None:
        """Dreams every job on the workers and saves each as it finishes, until done or
        ``stop``; raises ``ClusterError`` for a chunk that killed ``MAX_ATTEMPTS`` workers."""
        ray = self._ray
        threads = self._threads()
        # One GPU a worker where the cluster has one for each of them (``ray start --num-gpus``).
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= self.workers else 0.0
        log.info(
            "%d Ray workers%s, %d TensorFlow thread%s each%s",
            self.workers,
            f" on the cluster at {self.cluster}" if self.cluster else " on this machine",
            threads,
            "" if threads == 1 else "s",
            ", one GPU each" if gpus else "",
        )
        progress = ray.remote(Progress).options(num_cpus=0).remote()
        idle = [self._new_worker(threads, gpus) for _ in range(self.workers)]
        self._actors = list(idle)
        waiting: Iterator[Job] = iter(jobs)
        retry: list[tuple[Any, Any]] = []  # (chunk, frames ref) whose worker died
        attempts: dict[int, int] = {}
        busy: dict[Any, tuple[Any, Any, Any]] = {}  # result ref -> (worker, chunk, frames ref)
        exhausted = False
        while True:
            while idle and not stop.is_set() and (retry or not exhausted):
                if retry:
                    chunk, frames_ref = retry.pop(0)
                else:
                    job = next(waiting, None)
                    if job is None:
                        exhausted = True
                        break
                    chunk, frames_ref = job[0], ray.put(job[1])
                worker = idle.pop()
                attempts[chunk.number] = attempts.get(chunk.number, 0) + 1
                busy[worker.dream.remote(chunk, frames_ref, fps, progress)] = (
                    worker,
                    chunk,
                    frames_ref,
                )
            if stop.is_set() or not busy:
                return
            ready, _ = ray.wait(list(busy), num_returns=1, timeout=POLL_S)
            self._report(progress, report, {c.number for _, c, _ in busy.values()})
            for ref in ready:
                worker, chunk, frames_ref = busy.pop(ref)
                try:
                    data = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    self.lost += 1
                    if attempts[chunk.number] >= MAX_ATTEMPTS:
                        raise ClusterError(
                            f"chunk {chunk.number} (frames {chunk.start}-{chunk.end - 1}) killed "
                            f"{MAX_ATTEMPTS} workers (out of memory?); try a smaller --dream-size "
                            "or fewer --workers"
                        ) from None
                    log.warning(
                        "a worker died while dreaming chunk %d; it goes to a fresh worker",
                        chunk.number,
                    )
                    retry.append((chunk, frames_ref))
                    worker = self._new_worker(threads, gpus)
                    self._actors.append(worker)
                except ray.exceptions.RayTaskError as e:  # the dream itself failed
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, LivedreamError):
                        raise cause from None
                    raise
                else:
                    save(chunk, data)
                idle.append(worker)

    def _report(self, progress: Any, report: Report, running: set[int]) -> None:
        try:
            done = self._ray.get(progress.snapshot.remote(), timeout=POLL_S)
        except Exception:  # the counter is best effort: the chunks themselves are what count
            return
        for number, frames in done.items():
            if number in running:
                report(number, frames)

    def close(self) -> None:
        """Kills every worker and leaves Ray (stops it when embedded). Idempotent."""
        ray, self._ray = self._ray, None
        if ray is None:
            return
        for actor in getattr(self, "_actors", []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception as e:  # already gone
                log.debug("killing a worker: %s", e)
        ray.shutdown()

    def __enter__(self) -> RayRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
