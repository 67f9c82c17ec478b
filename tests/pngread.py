"""A small pure-Python PNG reader (8-bit greyscale/RGB/RGBA/palette, non-interlaced): enough
to check a headless-browser screenshot's pixels without an imaging library."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PngError(ValueError):
    pass


@dataclass
class Image:
    width: int
    height: int
    rows: list[list[tuple[int, int, int]]]  # RGB per pixel

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        return self.rows[y][x]

    def histogram(self) -> Counter[tuple[int, int, int]]:
        c: Counter[tuple[int, int, int]] = Counter()
        for row in self.rows:
            c.update(row)
        return c

    def count_near(self, rgb: tuple[int, int, int], tol: int = 6) -> int:
        """Pixels within ``tol`` of ``rgb`` on every channel."""
        r0, g0, b0 = rgb
        return sum(n for (r, g, b), n in self.histogram().items()
                   if abs(r - r0) <= tol and abs(g - g0) <= tol and abs(b - b0) <= tol)

    def boxes_of(self, rgb: tuple[int, int, int], tol: int = 6,
                 min_side: int = 20) -> list[tuple[int, int, int, int]]:
        """Bounding boxes (x0, y0, x1, y1) of connected regions of ``rgb`` whose sides are
        both at least ``min_side`` pixels (drawn boxes, not anti-aliased text)."""
        def near(p: tuple[int, int, int]) -> bool:
            return all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True))

        seen = [[False] * self.width for _ in range(self.height)]
        out = []
        for y in range(self.height):
            for x in range(self.width):
                if seen[y][x] or not near(self.rows[y][x]):
                    continue
                stack = [(x, y)]
                seen[y][x] = True
                x0 = x1 = x
                y0 = y1 = y
                while stack:
                    cx, cy = stack.pop()
                    x0, x1, y0, y1 = min(x0, cx), max(x1, cx), min(y0, cy), max(y1, cy)
                    for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
                        if (0 <= nx < self.width and 0 <= ny < self.height
                                and not seen[ny][nx] and near(self.rows[ny][nx])):
                            seen[ny][nx] = True
                            stack.append((nx, ny))
                if x1 - x0 + 1 >= min_side and y1 - y0 + 1 >= min_side:
                    out.append((x0, y0, x1, y1))
        return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(data: bytes) -> Image:
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG file")
    pos = len(SIGNATURE)
    idat = bytearray()
    palette: list[tuple[int, int, int]] = []
    width = height = depth = ctype = interlace = -1
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError("truncated chunk header")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + chunk) & 0xFFFFFFFF != crc:
            raise PngError(f"bad CRC in {kind!r}")
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _comp, _filt, interlace = struct.unpack(
                ">IIBBBBB", chunk)
        elif kind == b"PLTE":
            palette = [tuple(chunk[i:i + 3]) for i in range(0, len(chunk), 3)]  # type: ignore[misc]
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    if width <= 0 or height <= 0:
        raise PngError("no IHDR")
    if depth != 8 or ctype not in CHANNELS or interlace != 0:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {ctype}, "
                       f"interlace {interlace}")
    bpp = CHANNELS[ctype]
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    if len(raw) != height * (stride + 1):
        raise PngError("image data has the wrong size")
    prev = bytearray(stride)
    rows: list[list[tuple[int, int, int]]] = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 0xFF
            elif f != 0:
                raise PngError(f"bad filter type {f}")
        prev = line
        if ctype == 2:
            px = [tuple(line[i:i + 3]) for i in range(0, stride, 3)]
        elif ctype == 6:  # RGBA over white
            px = []
            for i in range(0, stride, 4):
                r, g, b, al = line[i:i + 4]
                px.append(tuple((v * al + 255 * (255 - al)) // 255 for v in (r, g, b)))
        elif ctype == 3:
            px = [palette[i] for i in line]
        elif ctype == 0:
            px = [(v, v, v) for v in line]
        else:  # 4: grey + alpha
            px = [(line[i],) * 3 for i in range(0, stride, 2)]
        rows.append(px)  # type: ignore[arg-type]
    return Image(width, height, rows)


def encode(rows: list[list[tuple[int, int, int]]]) -> bytes:
    """An RGB PNG with a mix of filter types (for testing :func:`decode`)."""
    height, width = len(rows), len(rows[0])

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    raw = bytearray()
    prev = bytes(width * 3)
    for y, row in enumerate(rows):
        line = bytes(v for px in row for v in px)
        f = y % 3  # 0 none, 1 sub, 2 up
        raw.append(f)
        for i, v in enumerate(line):
            if f == 0:
                raw.append(v)
            elif f == 1:
                raw.append((v - (line[i - 3] if i >= 3 else 0)) & 0xFF)
            else:
                raw.append((v - prev[i]) & 0xFF)
        prev = line
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw))) + \
        chunk(b"IEND", b"")
