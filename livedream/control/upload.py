"""An uploaded guide picture, decoded in memory within limits.

The size is read from the file's header before anything is decoded, so a small file that
claims a huge picture (a decompression bomb) is refused without allocating it. PNG, JPEG and
WebP only; nothing touches the disk.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from livedream.control.values import BadValue

MAX_BYTES = 10 * 1024 * 1024  # 10 MB: a large phone photo
MAX_SIDE = 4096  # px a side: the guide is resized to the dream size anyway


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG, JPEG or WebP header; raises ``BadValue``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    raise BadValue("guide: expected a PNG, JPEG or WebP image, got something else")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 carry the size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise BadValue("guide: a JPEG without a readable size; save it again and retry")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise BadValue("guide: a WebP without a readable size; save it again and retry")


def decode_guide(data: bytes) -> np.ndarray:
    """The picture in ``data`` as (H, W, 3) uint8 BGR, within ``MAX_BYTES`` and ``MAX_SIDE``.

    Raises:
        BadValue: too large, not an image, or not decodable (one line).
    """
    if len(data) > MAX_BYTES:
        raise BadValue(
            f"guide: expected an image of at most {MAX_BYTES // 2**20} MB, "
            f"got {len(data) / 2**20:.1f} MB"
        )
    width, height = image_size(data)
    if not 0 < width <= MAX_SIDE or not 0 < height <= MAX_SIDE:
        raise BadValue(
            f"guide: expected at most {MAX_SIDE}x{MAX_SIDE} pixels, got {width}x{height}; "
            "make it smaller"
        )
    image = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if image is None or image.shape[:2] != (height, width):
        raise BadValue("guide: the image could not be decoded; save it again and retry")
    return np.ascontiguousarray(image)
