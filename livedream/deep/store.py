"""The chunk folder: finished chunks kept beside the output, so a render can resume.

``dream.mp4`` keeps its chunks in ``.dream.mp4.chunks/`` beside it::

    lock                  held (fcntl) by the run using the folder: a second run is refused
    manifest.json         the input (path, size, modification time) and every pixel setting
    chunk-00012.mkv       a finished chunk: lossless FFV1, renamed into place once complete

Running the same command again reuses every finished chunk; a changed input or pixel setting
is refused in one line (the folder would mix two renders). The folder is removed once the
output is assembled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from livedream.errors import LivedreamError

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2  # 2: a chunk also keeps the frames it cross-fades from the chunk before


class ChunkFolderError(LivedreamError):
    """A chunk folder that cannot be used: locked by another run, or made for another render."""


def chunk_folder(output: Path) -> Path:
    """The chunk folder of ``output``: hidden, beside it, named after it."""
    return output.with_name(f".{output.name}.chunks")


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first setting that differs between two manifests, in words; None when none does."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key} was {old.get(key)!r}, now {new.get(key)!r}"
    return None


class ChunkStore:
    """The chunk folder of one render, locked while open. A context manager; ``close()`` is
    idempotent.

    Args:
        output: the file the render assembles.
        manifest: what the chunks depend on (the input's identity and every pixel setting),
            JSON-able; an existing folder must hold the same.

    Raises:
        ChunkFolderError: another run holds the folder, or it was made for another input or
            other settings (one line, saying what changed and what to do).
    """

    def __init__(self, output: Path, manifest: dict[str, Any]) -> None:
        self.output = output
        self.folder = chunk_folder(output)
        self._lock_fd: int | None = None
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as e:
            raise ChunkFolderError(
                f"cannot create the chunk folder {self.folder}: {e.strerror}; "
                "choose an output in a writable folder"
            ) from None
        self._lock()
        try:
            self.resumed = self._check(manifest)
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ChunkFolderError(
                f"another livedream run is rendering into {self.folder} now; wait for it to "
                f"finish, or write to another --output"
            ) from None
        self._lock_fd = fd

    def _check(self, manifest: dict[str, Any]) -> bool:
        """Writes the manifest of a new folder; compares an old one. True: resuming."""
        manifest = {"version": MANIFEST_VERSION, **manifest}
        path = self.folder / "manifest.json"
        try:
            old = json.loads(path.read_text())
        except FileNotFoundError:
            old = None
        except (OSError, ValueError):
            old = {"manifest": "unreadable"}
        if old is None:
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(temp, path)
            for stale in self.folder.glob("chunk-*"):  # a folder without a manifest: unknown
                stale.unlink()
            return False
        if old.get("version") != MANIFEST_VERSION:
            raise ChunkFolderError(
                f"cannot resume into {self.output.name}: its chunk folder {self.folder} was made "
                f"by another version of livedream (folder version {old.get('version')!r}, this "
                f"one {MANIFEST_VERSION}); delete that folder to start over"
            )
        change = describe_change(old, json.loads(json.dumps(manifest)))
        if change is not None:
            raise ChunkFolderError(
                f"cannot resume into {self.output.name}: its chunk folder {self.folder} was made "
                f"for another render ({change}); run the first command again to resume it, or "
                f"delete that folder to start over"
            )
        return True

    def chunk_path(self, number: int) -> Path:
        """Where chunk ``number`` is kept once finished."""
        return self.folder / f"chunk-{number:05d}.mkv"

    def finished(self) -> set[int]:
        """The numbers of the finished chunks in the folder."""
        numbers = set()
        for path in self.folder.glob("chunk-*.mkv"):
            with contextlib.suppress(ValueError):
                numbers.add(int(path.stem.removeprefix("chunk-")))
        return numbers

    def save(self, number: int, data: bytes) -> None:
        """Keeps a finished chunk: written aside, flushed to disk, then renamed into place, so
        a killed run leaves either the whole chunk or none of it."""
        path = self.chunk_path(number)
        temp = path.with_suffix(".part")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)

    def load(self, number: int) -> bytes:
        """A finished chunk's bytes."""
        return self.chunk_path(number).read_bytes()

    def remove(self) -> None:
        """Removes the folder (the output is assembled) and releases the lock."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Releases the lock; the folder stays for a later resume. Idempotent."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> ChunkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
