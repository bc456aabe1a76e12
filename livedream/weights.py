"""The ImageNet weights of the Keras models, fetched ahead of time: ``livedream --get-weights``.

    livedream --get-weights inception_v3     # the seed's model: about 87 MB, once
    livedream --get-weights vgg16 --weights-url https://mirror.example/vgg16_notop.h5

Keras downloads these files itself on a model's first use. This does it as a command of its own,
with a progress bar, the file checked against Keras' published hash before it is put in place,
and one line (no traceback) when the machine is offline. The file lands in Keras' cache under
Keras' own name, so ``keras.applications.InceptionV3(weights="imagenet")`` finds it there and
never downloads it again. The bundled ``vgg16_hed`` needs none of this.

Standard library and Rich only: no TensorFlow or Keras import, so the command and the doctor
stay quick.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from livedream import __version__
from livedream.errors import DownloadError, ModelError, OfflineError

DOWNLOAD_TIMEOUT_S = 20.0  # no byte for this long (connecting or mid-file): give up, offline
CHUNK_BYTES = 1 << 16
OFFLINE_HINT = "`--model vgg16_hed` works offline"


@dataclass(frozen=True)
class KerasWeights:
    """Where Keras fetches one model's ImageNet weights without the top, and their hash.

    Attributes:
        filename: the name Keras saves the file under, in ``<Keras home>/models``.
        url: where Keras downloads it from.
        file_hash: Keras' published hash: md5 (32 hex digits) or sha256 (64), by its length.
        size_mb: about how big the file is, for the message before the download.
    """

    filename: str
    url: str
    file_hash: str
    size_mb: int


# Copied from the installed Keras: keras/src/applications/inception_v3.py and vgg16.py, their
# WEIGHTS_PATH_NO_TOP and the file name and file_hash of their include_top=False get_file call.
# Keras keeps the hashes inline (no constant to import) and importing Keras means TensorFlow's
# seconds of start-up; tests/test_weights.py reads Keras' source to keep these in step.
KERAS_WEIGHTS = {
    "inception_v3": KerasWeights(
        filename="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        file_hash="bcbd6486424b2319ff4ef7d526e38f63",
        size_mb=87,
    ),
    "vgg16": KerasWeights(
        filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        file_hash="6d6bbae143d832006294945121d1f1fc",
        size_mb=59,
    ),
}


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``.

    As Keras decides it (``keras/src/backend/config.py``, ``utils/file_utils.py get_file``):
    without ``KERAS_HOME`` a home folder that is not writable means ``/tmp/.keras``, and so does
    a Keras home that exists but is not writable.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        user = os.path.expanduser("~")
        home = os.path.join(user if os.access(user, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "models"


def _spec(model: str) -> KerasWeights:
    if model not in KERAS_WEIGHTS:
        raise ModelError(
            f"no ImageNet weights to download for {model!r} (expected one of: "
            f"{', '.join(KERAS_WEIGHTS)}); vgg16_hed's come with the package"
        )
    return KERAS_WEIGHTS[model]


def weights_path(model: str, *, cache_dir: Path | None = None) -> Path:
    """Where Keras looks for ``model``'s ImageNet weights (``cache_dir``: the models folder)."""
    return (cache_dir or keras_models_dir()) / _spec(model).filename


def have_weights(model: str, *, cache_dir: Path | None = None, verify: bool = False) -> bool:
    """Whether ``model``'s ImageNet weights are in Keras' cache, so that it builds offline.

    By default it only looks (instant, for choosing a model at start-up); Keras checks the hash
    when it loads, and downloads again on a mismatch. ``verify`` checks the hash here (a
    fraction of a second for 87 MB).
    """
    path = weights_path(model, cache_dir=cache_dir)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if not verify:
        return True
    file_hash = _spec(model).file_hash
    return file_digest(path, hash_algorithm(file_hash)) == file_hash


def hash_algorithm(file_hash: str) -> str:
    """``sha256`` for a 64-digit hash, else ``md5``: Keras' own rule (``resolve_hasher``)."""
    return "sha256" if len(file_hash) == 64 else "md5"


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (``md5`` or ``sha256``)."""
    hasher = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


@dataclass(frozen=True)
class Fetched:
    """What ``get_weights`` did.

    Attributes:
        path: the weights file, in place under Keras' name.
        algorithm: the hash it was checked with (``md5`` or ``sha256``).
        downloaded: False when the right file was there already (nothing was done).
        size: the file's size in bytes.
    """

    path: Path
    algorithm: str
    downloaded: bool
    size: int


def get_weights(
    model: str,
    *,
    url: str | None = None,
    file_hash: str | None = None,
    cache_dir: Path | None = None,
    console: Console | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Fetched:
    """Downloads ``model``'s ImageNet weights into Keras' cache, once, checked by their hash.

    The bytes go to a new hidden file beside the target, are hashed on the way and are renamed
    onto Keras' file name only when the hash matches, so Keras never sees half a file. On any
    failure or interruption (``KeyboardInterrupt`` included, re-raised) that file is removed.

    Args:
        model: ``inception_v3`` or ``vgg16``.
        url: where to download from (a mirror); default Keras' own URL.
        file_hash: the md5 or sha256 the file must have; default Keras' published one.
        cache_dir: the folder to put it in; default ``keras_models_dir()``.
        console: says what is downloaded from where, with a progress bar (bytes, speed, time
            left); None shows nothing.
        timeout: seconds without a byte (connecting or mid-file) before giving up.

    Raises:
        ModelError: not a model with downloadable weights.
        OfflineError: the server could not be reached (no DNS, refused, no answer in time).
        DownloadError: the server said no, the download broke off or did not match the hash,
            or the file could not be written.
    """
    spec = _spec(model)
    url = url or spec.url
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"expected an http:// or https:// URL for the weights, got {url!r}")
    file_hash = (file_hash or spec.file_hash).lower()
    algorithm = hash_algorithm(file_hash)
    folder = cache_dir or keras_models_dir()
    target = folder / spec.filename
    damaged = ""
    if target.is_file():
        if file_digest(target, algorithm) == file_hash:
            return Fetched(target, algorithm, downloaded=False, size=target.stat().st_size)
        damaged = f"{target} does not match Keras' published {algorithm}: "
    if console is not None:
        console.print(
            f"{damaged}downloading the {model} weights (about {spec.size_mb} MB) from "
            f"{_where(url)} into {folder}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    except OSError as exc:
        raise DownloadError(
            f"cannot write into {folder} ({exc.strerror or exc}): set KERAS_HOME to a folder "
            "you can write to"
        ) from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(model, url, out, algorithm, console=console, timeout=timeout)
        if digest != file_hash:
            raise DownloadError(
                f"downloaded {spec.filename} does not match Keras' published {algorithm} "
                f"{file_hash} (got {digest}): the download was damaged or intercepted; run "
                "the command again"
            )
        temp.chmod(0o644)  # mkstemp's 0600 would keep other users' Keras from reading it
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Fetched(target, algorithm, downloaded=True, size=target.stat().st_size)


def _where(url: str) -> str:
    """The host (and port) of ``url``, never its login."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number: urlopen says so
        return host


def _offline(model: str, url: str, exc: BaseException, timeout: float) -> OfflineError:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError):
        why = f"no answer in {timeout:g} s"
    elif isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, socket.gaierror):
        why = "the name does not resolve"
    else:
        why = str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__
    return OfflineError(
        f"could not download the {model} weights from {_where(url)} ({why}): the machine seems "
        f"offline; {OFFLINE_HINT}, or run this again once online"
    )


def _download(
    model: str,
    url: str,
    out: BinaryIO,
    algorithm: str,
    *,
    console: Console | None,
    timeout: float,
) -> str:
    """Streams ``url`` into ``out`` with a progress bar; returns the bytes' hex digest."""
    request = urllib.request.Request(url, headers={"User-Agent": f"livedream/{__version__}"})
    try:
        # An opener of its own: urlopen's shared one keeps the proxy settings of its first use
        # in this process (Keras' own download may have made it), and they may be gone since.
        response = urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download the {model} weights from {_where(url)}: the server answered "
            f"HTTP {exc.code} {exc.reason}; check the URL, or leave --weights-url out for "
            "Keras' own"
        ) from None
    except (urllib.error.URLError, OSError) as exc:  # DNS, refused, unreachable, timed out
        raise _offline(model, url, exc, timeout) from None
    hasher = hashlib.new(algorithm)
    received = 0
    with response:
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, disable=console is None) as progress:
            task = progress.add_task(f"{model} weights", total=total)
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except Exception as exc:  # a timeout, a reset, http.client's IncompleteRead
                    raise _broke_off(model, url, received, total, exc, timeout) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(
                        f"could not write the {model} weights ({exc.strerror or exc}): free "
                        "some disk space, or set KERAS_HOME to another folder"
                    ) from None
                hasher.update(chunk)
                received += len(chunk)
                progress.update(task, completed=received)
    if total is not None and received < total:
        raise _broke_off(model, url, received, total, None, timeout)
    return hasher.hexdigest()


def _broke_off(
    model: str,
    url: str,
    received: int,
    total: int | None,
    exc: BaseException | None,
    timeout: float,
) -> DownloadError:
    of = f" of {total / 1e6:.1f}" if total else ""
    if isinstance(exc, TimeoutError):
        why = f" (no data for {timeout:g} s)"
    elif exc is not None:
        why = f" ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    else:
        why = " (the server closed the connection)"
    return DownloadError(
        f"the download of the {model} weights from {_where(url)} broke off after "
        f"{received / 1e6:.1f}{of} MB{why}; run the command again"
    )


def get_weights_command(model: str, *, url: str | None, console: Console) -> int:
    """``livedream --get-weights MODEL``: downloads, says what was done, returns exit code 0.

    Errors are raised (one-line ``LivedreamError``s) for the CLI to print; Ctrl-C raises
    ``KeyboardInterrupt`` once the partial file is gone.
    """
    fetched = get_weights(model, url=url, console=console)
    if fetched.downloaded:
        said = (
            f"saved {fetched.path} ({fetched.size / 1e6:.1f} MB, {fetched.algorithm} matches "
            f"Keras' published hash): --model {model} now builds without network"
        )
    else:
        said = (
            f"{fetched.path} is already there and its {fetched.algorithm} matches Keras' "
            "published hash: nothing to do"
        )
    console.print(said, highlight=False, markup=False, soft_wrap=True)
    return 0
