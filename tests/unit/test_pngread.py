"""The test PNG reader (used on headless-browser screenshots) decodes what it should."""

from __future__ import annotations

import pytest

from pngread import PngError, decode, encode

RED, WHITE, BLUE = (214, 39, 40), (255, 255, 255), (31, 119, 180)


def picture() -> list[list[tuple[int, int, int]]]:
    rows = [[WHITE] * 40 for _ in range(30)]
    for y in range(5, 25):
        for x in range(3, 28):
            rows[y][x] = BLUE
    rows[0][0] = RED
    return rows


def test_round_trip_with_filters_and_box_detection() -> None:
    img = decode(encode(picture()))
    assert (img.width, img.height) == (40, 30)
    assert img.pixel(0, 0) == RED and img.pixel(10, 10) == BLUE and img.pixel(39, 29) == WHITE
    assert img.count_near(BLUE) == 20 * 25
    assert img.boxes_of(BLUE, min_side=10) == [(3, 5, 27, 24)]
    assert img.boxes_of(RED, min_side=2) == []  # one pixel is no box


def test_corrupt_data_rejected() -> None:
    data = bytearray(encode(picture()))
    with pytest.raises(PngError):
        decode(b"GIF89a" + bytes(data[6:]))
    data[20] ^= 0xFF  # inside IHDR: CRC mismatch
    with pytest.raises(PngError, match="CRC"):
        decode(bytes(data))
