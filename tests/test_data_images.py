"""figkd.data.images: images of more than 8 bits per sample (16-bit and 32-bit integer, 32-bit float) are
scaled to uint8, or refused with one line naming the file and mode; never clipped into a wrong image.

The fixtures are made with Pillow from numpy arrays (Pillow 13 opens a 16-bit PNG as ``I;16``, a big-endian
16-bit TIFF as ``I;16B``, an int32 TIFF as ``I`` and a float32 TIFF as ``F``); the expected bytes follow
from the documented rule (16-bit: the high byte, ``v >> 8``; float in [0, 1]: ``round(255 v)``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from figkd.data import CorruptImageError, build_dataset
from figkd.data.cache import resident_arrays, resized_cache
from figkd.data.images import decode_image
from figkd.errors import DataError

# 16-bit samples and their 8-bit values: 257 v (the 8 -> 16-bit expansion) gives back v; 0x7FFF gives 127
# (the high byte; rounding v / 257 would give 128), 0x80FF 128.
U16 = np.array([[0, 257, 128 * 257, 65535], [0x7FFF, 0x80FF, 255, 4095]], np.uint16)
U16_AS_8 = np.array([[0, 1, 128, 255], [127, 128, 0, 15]], np.uint8)


def _save(path, arr: np.ndarray) -> str:
    Image.fromarray(arr).save(path)
    return str(path)


def _grey(expected: np.ndarray) -> np.ndarray:
    return np.repeat(expected[..., None], 3, axis=2)


@pytest.mark.parametrize("name, arr, mode, expected", [
    ("a.png", U16, "I;16", U16_AS_8),
    ("a.tif", U16.astype(">u2"), "I;16B", U16_AS_8),
    ("i16.tif", U16.astype(np.int32), "I", U16_AS_8),  # 16-bit values in a 32-bit container
    ("i8.tif", np.array([[0, 7, 128, 255]], np.int32), "I", np.array([[0, 7, 128, 255]], np.uint8)),
    ("f.tif", np.array([[0.0, 0.5, 1.0, 0.25, 0.999]], np.float32), "F",
     np.array([[0, 128, 255, 64, 255]], np.uint8)),
])
def test_decode_image_scales_16_bit_int_and_float_modes_to_8_bits(tmp_path, name, arr, mode, expected):
    path = _save(tmp_path / name, arr)
    with Image.open(path) as img:
        assert img.mode == mode  # the fixture is what the test claims it is
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == arr.shape + (3,)
    np.testing.assert_array_equal(out, _grey(expected))


@pytest.mark.parametrize("name, arr, mode, what", [
    ("over.tif", np.array([[0.0, 255.0]], np.float32), "F", r"values in \[0, 255\]"),
    ("neg.tif", np.array([[-0.5, 0.5]], np.float32), "F", r"values in \[-0.5, 0.5\]"),
    ("nan.tif", np.array([[np.nan, 0.5]], np.float32), "F", "not a number"),
    ("big.tif", np.array([[0, 70000]], np.int32), "I", r"values in \[0, 70000\]"),
    ("negi.tif", np.array([[-1, 10]], np.int32), "I", r"values in \[-1, 10\]"),
])
def test_decode_image_refuses_values_without_a_known_white_point(tmp_path, name, arr, mode, what):
    path = _save(tmp_path / name, arr)
    with pytest.raises(CorruptImageError, match=what) as e:
        decode_image(path)
    msg = str(e.value)
    assert isinstance(e.value, DataError) and "\n" not in msg
    assert path in msg and f"mode {mode}" in msg and e.value.path == path


def test_every_image_path_decodes_16_bit_files_alike(tmp_path):
    """A dataset item, the device-resident arrays (and their cache) and the shorter-side cache all go
    through one decoder: a 16-bit image folder gives the same 8-bit pixels on each path."""
    root = tmp_path / "folder"
    arr = np.full((8, 8), 128 * 257, np.uint16)
    arr[:4] = 64 * 257
    for split in ("train", "val"):
        for c in ("a", "b"):
            os.makedirs(root / split / c)
            _save(root / split / c / "x.png", arr)
    expected = np.full((8, 8), 128, np.uint8)
    expected[:4] = 64
    ds = build_dataset("imagefolder", str(root), train=True)
    img, _ = ds[0]
    np.testing.assert_array_equal(img.numpy(), np.broadcast_to(expected, (3, 8, 8)))
    for cache_dir in (None, str(tmp_path / "cache"), str(tmp_path / "cache")):  # built, then read back
        images, _ = resident_arrays(ds, 8, cache_dir=cache_dir)
        np.testing.assert_array_equal(images, np.broadcast_to(expected, (2, 3, 8, 8)))
    cache = resized_cache(ds, 8, str(tmp_path / "cache"))
    np.testing.assert_array_equal(cache.image(1), _grey(expected))
