"""Files: a video file and an image file, each written under a hidden name of its own and
renamed into place on ``close()``.

The hidden name is unique to the run and created exclusively (never through a symlink), beside
the target and ending in its extension: ``.dream.mp4.k3j2x9ab.partial.mp4``. An .mp4/.m4v/.mov
is written fragmented and copied with its index in front when finished
(``make_faststart``); .mkv/.webm/.avi play as they grow.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
from pathlib import Path

import av
import cv2

from livedream.encode import DEFAULT_QUALITY, FORMATS, VIDEO_EXTENSIONS, VideoEncoder
from livedream.errors import OutputWriteError, SinkError
from livedream.media import IMAGE_EXTENSIONS, Frame, check_frame, is_image_path
from livedream.sinks.base import Sink
from livedream.soundtrack import av_reason

logger = logging.getLogger(__name__)


def _check_target(path: Path, *, overwrite: bool, extensions: tuple[str, ...], kind: str) -> None:
    """Raise ``SinkError`` unless a file can be created at ``path``."""
    suffix = path.suffix.lower()
    if suffix not in extensions:
        raise SinkError(
            f"cannot write {path}: unknown {kind} format {suffix or '(no extension)'!r}; "
            f"expected one of {' '.join(extensions)}"
        )
    folder = path.parent
    if not folder.exists():
        # Walk up to the first missing part: a file in the way reads better than "missing".
        for parent in (folder, *folder.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise SinkError(
                        f"cannot write {path}: {parent} is a file, not a folder; "
                        "choose another output path"
                    )
                break
        raise SinkError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise SinkError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"cannot write {path}: folder {folder} is not writable; choose another")
    if path.is_dir():
        raise SinkError(f"cannot write {path}: it is a folder; give a file name")
    if path.exists() and not overwrite:
        raise SinkError(
            f"cannot write {path}: the file already exists; pass --overwrite to replace it "
            "or choose another name"
        )
    _probe_folder(path)


def _probe_folder(path: Path) -> None:
    """Creates and removes a hidden file beside ``path``: the only sure test of writing there.

    ``os.access`` says yes to root on a read-only file system, a full disk or a quota.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as e:
        raise SinkError(
            f"cannot write {path}: creating a file in {path.parent} failed ({e.strerror}); "
            "choose another folder"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Checks that a video or image file can be created at ``path``, before any work starts.

    Raises:
        SinkError: an unknown extension, a missing or read-only folder, or an existing file
            without ``overwrite``, with a one-line reason.
    """
    path = Path(path)
    if is_image_path(path):
        _check_target(path, overwrite=overwrite, extensions=IMAGE_EXTENSIONS, kind="image")
    else:
        _check_target(path, overwrite=overwrite, extensions=VIDEO_EXTENSIONS, kind="video")


def _hidden_file(path: Path, error: type[Exception] = SinkError) -> tuple[int, Path]:
    """Create a hidden file for ``path``: an open descriptor and its name.

    Beside the target (same file system, so the rename is atomic), unique to this run and
    created with O_EXCL (a name taken, or a symlink planted there, is never used), ending in
    the target's extension so that a player recognises a kept partial file. Its permissions
    are those of any new file (the umask's), as the published file keeps them.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{path.suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
        except OSError as e:
            raise error(f"cannot write {path}: {e.strerror}; choose another folder") from None
    raise error(f"cannot write {path}: no free hidden name beside it; clean up its folder")


def _publish(temp: Path, path: Path) -> None:
    try:
        os.replace(temp, path)
    except OSError as e:
        raise OutputWriteError(
            f"cannot move the finished {temp.name} to {path}: {e.strerror}; "
            f"the frames are kept in {temp}"
        ) from e


def make_faststart(growing: Path, final: Path, *, extension: str) -> None:
    """Copy the fragmented file ``growing`` into ``final`` with its index in front, packet for
    packet (no re-encoding): the plain MP4/MOV a browser plays while downloading.

    Raises:
        OSError, av.FFmpegError: ``growing`` could not be read or ``final`` written.
    """
    fmt = FORMATS[extension.lower()]
    with (
        av.open(str(growing)) as source,
        av.open(str(final), "w", format=fmt.muxer, options={"movflags": "+faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.size == 0:
                continue  # a flush marker
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


class VideoFileSink(Sink):
    """A video file, written under a hidden name of its own and renamed into place on ``close()``.

    Written by ``livedream.encode``: H.264 in .mp4/.m4v/.mov/.mkv, VP9 in .webm, Motion JPEG in
    .avi, with the sound of ``audio_from`` carried over. ``write()`` and ``close()`` may be
    called from different threads; ``write()`` after ``close()`` is ignored.

    ``realtime=True`` (a live run's recording) keeps the file's timing at ``fps`` by the
    frames' capture times: a frame is placed in its slot (capture time x fps), and the one
    before shows until then, so the file plays in real time however fast the frames came, and a
    gap (a stream reconnecting) costs one frame's work, not one per slot. Each frame gets a
    slot of its own, so a camera that delivers in bursts costs no frame. Otherwise a frame's
    ``pts`` (its time in the input) is kept, so a variable-frame-rate clip keeps its timing and
    its sound sync.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        overwrite: bool = False,
        realtime: bool = False,
        quality: int = DEFAULT_QUALITY,
        audio_from: Path | None = None,
    ) -> None:
        self._path = Path(path)
        _check_target(self._path, overwrite=overwrite, extensions=VIDEO_EXTENSIONS, kind="video")
        self._shape = (height, width, 3)
        self._fps = float(fps)
        fd, self._temp = _hidden_file(self._path)
        self._file = os.fdopen(fd, "w+b", buffering=0)  # PyAV buffers; a crash loses no more
        try:
            self._encoder = VideoEncoder(
                self._temp,
                extension=self._path.suffix.lower(),
                width=width,
                height=height,
                fps=fps,
                quality=quality,
                audio_from=audio_from,
                file=self._file,
                keep_gaps=realtime,
            )
        except BaseException:
            self._file.close()
            self._temp.unlink(missing_ok=True)
            raise
        self._lock = threading.Lock()
        self._closed = False
        self._frames = 0
        self._realtime = realtime
        self._first_at: float | None = None
        self._slot = -1  # the newest frame's place in a real-time file, in frames
        fmt = self._encoder.format
        logger.info(
            "writing %s (%dx%d, %.3g fps, %s, quality %d%s) via %s",
            self._path,
            width,
            height,
            fps,
            fmt.video_codec,
            quality,
            ", with the input's sound" if self._encoder.has_sound else "",
            self._temp.name,
        )

    @property
    def name(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        """The file the video ends up in on ``close()``."""
        return self._path

    @property
    def temp_path(self) -> Path:
        """The hidden file written to until ``close()``."""
        return self._temp

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame of the size given at construction.

        Args:
            frame: the picture.
            at: its capture time (``time.perf_counter()``); used in real-time mode only.
            pts: its time in the input, in seconds; None: frame number / fps.

        Raises:
            ValueError: the frame has another shape.
            OutputWriteError: the file could not be written (disk full, folder gone).
        """
        check_frame(frame, self._shape)
        with self._lock:
            if self._closed:
                logger.debug("%s: frame after close() dropped", self._path)
                return
            if self._realtime:
                if at is not None and self._first_at is None:
                    self._first_at = at
                slot = self._slot + 1
                if at is not None and self._first_at is not None:
                    slot = max(slot, int((at - self._first_at) * self._fps))
                self._slot = slot
                pts = slot / self._fps
            self._encoder.write(frame, pts)
            self._frames += 1

    def close(self) -> None:
        """Finish the file and rename it into place; with no frame written, create nothing.

        Safe to call twice and from any thread.

        Raises:
            OutputWriteError: the file could not be finished or renamed into place.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._encoder.close()
            finally:
                self._file.close()
                if self._frames == 0:
                    self._temp.unlink(missing_ok=True)
                    logger.info("%s: no frame written, no file created", self._path)
            if self._encoder.failed:
                # Writing failed (reported already): an incomplete file never takes the name
                # asked for, which may hold an earlier file (--overwrite).
                logger.warning(
                    "%s was not replaced; the frames so far are in %s", self._path, self._temp
                )
                return
            if self._frames:
                if self._encoder.format.faststart:
                    self._make_faststart()
                _publish(self._temp, self._path)
                logger.info("wrote %s: %d frames", self._path, self._frames)

    def discard(self) -> None:
        """Ends the file without giving it the name asked for: the hidden file is removed (a
        file assembled from parts kept elsewhere, which failed midway). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._encoder.close()
            except Exception as e:  # the file is thrown away: how it ended does not matter
                logger.debug("%s: discarding: %s", self._temp, e)
            finally:
                self._file.close()
                self._temp.unlink(missing_ok=True)

    def _make_faststart(self) -> None:
        """Replace the fragmented hidden file by a copy with its index in front."""
        fd, final = _hidden_file(self._path, OutputWriteError)
        os.close(fd)
        try:
            make_faststart(self._temp, final, extension=self._path.suffix)
        except (OSError, av.FFmpegError) as e:
            final.unlink(missing_ok=True)
            raise OutputWriteError(
                f"cannot finish {self._path}: {av_reason(e)}; the frames are kept in {self._temp}"
            ) from None
        self._temp.unlink()
        self._temp = final


class ImageFileSink(Sink):
    """An image file holding the last frame written, created on ``close()`` (temp + rename)."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self._path = Path(path)
        _check_target(self._path, overwrite=overwrite, extensions=IMAGE_EXTENSIONS, kind="image")
        self._lock = threading.Lock()
        self._closed = False
        self._last: Frame | None = None
        self._frames = 0

    @property
    def name(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        """The image file created on ``close()``."""
        return self._path

    @property
    def frames_written(self) -> int:
        """Frames taken so far (only the last one is saved)."""
        return self._frames

    def write(self, frame: Frame, *, at: float | None = None, pts: float | None = None) -> None:
        """Keep one ``(H, W, 3)`` uint8 BGR frame as the picture to save."""
        check_frame(frame)
        with self._lock:
            if self._closed:
                return
            self._last = frame.copy()
            self._frames += 1

    def close(self) -> None:
        """Save the last frame and rename it into place. Safe to call twice.

        Raises:
            OutputWriteError: the image could not be encoded or saved.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._last is None:
                return
            ok, data = cv2.imencode(self._path.suffix.lower(), self._last)
            if not ok:
                raise OutputWriteError(f"cannot encode {self._path}: OpenCV has no writer for it")
            fd, temp = _hidden_file(self._path, OutputWriteError)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data.tobytes())
            except OSError as e:
                temp.unlink(missing_ok=True)
                raise OutputWriteError(f"cannot write {self._path}: {e.strerror}") from e
            _publish(temp, self._path)
            logger.info("wrote %s", self._path)
