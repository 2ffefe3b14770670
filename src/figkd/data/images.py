"""Image decoding with Pillow, corrupt-file handling and the resizes the recipes use.

Every image is converted to RGB (greyscale, palette, CMYK and RGBA files occur in the fine-grained
sets) and returned as a uint8 ``(H, W, 3)`` numpy array. Pillow's default of refusing truncated files is
kept: a truncated JPEG is a corrupt image, not a silently grey-padded one.

Images of more than 8 bits per sample are scaled to 8 bits first (Pillow's own ``convert("RGB")`` clips
them: a 16-bit mid-grey would become white, a float image in [0, 1] black):

- 16-bit (modes ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``: 16-bit PNG, TIFF, PGM): the high byte,
  ``v >> 8`` — what Pillow itself does to 16-bit RGB PNGs, and torchvision's ``to_dtype(uint8, scale=True)``;
  ``257 v`` (the 8 -> 16-bit expansion) gives back ``v`` exactly.
- 32-bit integers (mode ``I``: int32 TIFF, and 16-bit PNG/PGM in older Pillow) carry no white point, so
  the values decide: all in [0, 255] are 8-bit values as they are; otherwise all in [0, 65535] are 16-bit
  values, scaled as above; any other range (negative, above 65535) is refused. A 16-bit image whose every
  pixel is at most 255 (under 0.4% of its full scale, black to the eye) is thus read as 8-bit.
- 32-bit float (mode ``F``): values in [0, 1] become ``round(255 v)``; values outside [0, 1] or NaN are
  refused (their white point is unknown: 1.0, 255.0, or the image's maximum).

A refused image is a :class:`CorruptImageError` naming the file, its mode and its value range (one line),
so ``skip_corrupt`` skips it like an undecodable file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = [
    "CorruptImageError",
    "center_crop_box",
    "decode_image",
    "default_threads",
    "open_image",
    "resize_exact",
    "resize_shorter",
    "scan_images",
]

# Pillow's bilinear filter (antialiased when reducing), the filter torchvision's Resize and
# RandomResizedCrop use on PIL images by default.
RESAMPLE = Image.Resampling.BILINEAR


#: How to skip undecodable images, in the spelling of the command line and of the Python API.
SKIP_ADVICE = ("or skip such files: figkd train/distill --set skip_corrupt=true (Python: build_dataset(..., "
               "skip_corrupt=True)); skipped files are counted and listed")


class CorruptImageError(DataError):
    """An image file that Pillow cannot decode. ``path`` names it, ``reason`` says why.

    A DataLoader worker re-raises an exception as ``type(exc)(message)``, where the message holds the
    worker's whole traceback; this class then keeps only the last line (its own message) and recovers
    ``path`` and ``reason`` from it, so that the error stays one line naming the file."""

    def __init__(self, path: str, reason: str | None = None):
        if reason is None:  # rebuilt from its message alone (DataLoader workers re-raise that way)
            line = next((x for x in reversed(path.splitlines()) if x.strip()), path).strip()
            line = line.split(f"{type(self).__name__}: ", 1)[-1]
            match = re.match(r"cannot decode image (.+?): (.+?)\. Replace the file", line)
            self.path, self.reason = (match.group(1), match.group(2)) if match else (None, None)
            super().__init__(line)
            return
        self.path, self.reason = path, reason
        super().__init__(f"cannot decode image {path}: {reason}. Replace the file, {SKIP_ADVICE}")

    def __reduce__(self):
        return (type(self), self.args if self.reason is None else (self.path, self.reason))


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def open_image(path: str) -> Image.Image:
    """Open ``path`` lazily (header only): ``.size`` is known before the pixels are decoded."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e


def _range(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def to_8bit(img: Image.Image, path: str) -> Image.Image:
    """An image of mode ``I;16*``, ``I`` or ``F`` as an 8-bit ``L`` image by the rules of the module
    docstring; any other image unchanged. Raises :class:`CorruptImageError` naming ``path``, the mode
    and the value range for ``I`` or ``F`` values without a known white point."""
    mode = img.mode
    if not (mode == "F" or mode == "I" or mode.startswith("I;16")):
        return img
    a = np.asarray(img)
    if mode.startswith("I;16"):
        return Image.fromarray((a.astype(np.uint16) >> 8).astype(np.uint8))
    if mode == "I":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if 0 <= lo and hi <= 255:
            return Image.fromarray(a.astype(np.uint8))
        if 0 <= lo and hi <= 65535:
            return Image.fromarray((a >> 8).astype(np.uint8))
        raise CorruptImageError(path, (
            f"mode I (32-bit integer) with values in {_range(lo, hi)}, which have no known white point "
            "(figkd reads 8-bit values 0..255 or 16-bit values 0..65535); save it as an 8- or 16-bit image"))
    if a.size and not np.isfinite(a).all():
        raise CorruptImageError(path, "mode F (32-bit float) with values that are not a number or infinite; "
                                      "save it as an 8-bit image, or as floats in [0, 1]")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise CorruptImageError(path, (
            f"mode F (32-bit float) with values in {_range(lo, hi)}; figkd reads float images with values in "
            "[0, 1] (1.0 is white); save it as an 8-bit image, or as floats in [0, 1]"))
    return Image.fromarray(np.rint(a.astype(np.float64) * 255.0).astype(np.uint8))


def to_rgb(img: Image.Image, path: str) -> Image.Image:
    """Decode fully and convert to 8-bit RGB (scaling images of more than 8 bits per sample, see the
    module docstring); a decoding failure or a refused value range names ``path``."""
    try:
        img.load()
        if img.mode == "RGB":
            return img
        return to_8bit(img, path).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, CorruptImageError):
            raise
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e


def decode_image(path: str) -> np.ndarray:
    """The image at ``path`` as uint8 RGB ``(H, W, 3)``."""
    with open_image(path) as img:
        return np.asarray(to_rgb(img, path), dtype=np.uint8).copy()


def resize_exact(img: Image.Image, size: int) -> Image.Image:
    """Plain resize to ``size x size`` (aspect ratio not kept); identity if already that size."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), RESAMPLE)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so that the shorter side is ``size``, the longer one ``int(size * long / short)`` —
    torchvision's ``Resize(size)`` rule; identity if the shorter side already is ``size``."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    return img.resize((nw, nh), RESAMPLE)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of torchvision's ``CenterCrop(size)`` (image at least ``size``)."""
    if width < size or height < size:
        raise ValueError(f"center crop {size} of a {width}x{height} image")
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def _check_one(path: str) -> tuple[str, str] | None:
    try:
        with open_image(path) as img:
            to_rgb(img, path)
    except CorruptImageError as e:
        return path, e.reason
    except FileNotFoundError as e:
        return path, f"FileNotFoundError: {e}"
    return None


def scan_images(
    paths: Sequence[str], *, name: str = "dataset", threads: int | None = None
) -> list[tuple[str, str]]:
    """Decode every file (threads: Pillow releases the GIL while decoding) and return the list of
    ``(path, reason)`` that failed. Emits one warning with the count and the first few names."""
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        bad = [r for r in pool.map(_check_one, paths, chunksize=64) if r is not None]
    if bad:
        head = "; ".join(f"{p} ({r})" for p, r in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        warnings.warn(
            f"{name}: skipped {len(bad)} of {len(paths)} image(s) that cannot be decoded: {head}{more}",
            stacklevel=3,
        )
    return bad


#: Images whose median shorter side is below this fraction of a recipe's crop are "much smaller" than it.
SMALL_FRACTION = 0.5


def median_shorter_side(paths: Sequence[str], samples: int = 16) -> int | None:
    """Median shorter side of up to ``samples`` evenly spaced images (headers only; unreadable ones are
    left out: they are reported where they are decoded). None when none could be read."""
    if not paths:
        return None
    step = max(1, len(paths) // samples)
    sides = []
    for path in list(paths)[::step][:samples]:
        try:
            with open_image(path) as img:
                sides.append(min(img.size))
        except (CorruptImageError, OSError):
            continue
    return int(np.median(sides)) if sides else None


def warn_if_much_smaller(name: str, paths: Sequence[str], crop: int, alternative: str) -> None:
    """Warn when the images are much smaller than the ``crop`` they are upscaled to (median shorter side
    below ``SMALL_FRACTION`` of it), naming ``alternative``, the dataset name that keeps them small."""
    side = median_shorter_side(paths)
    if side is not None and side < SMALL_FRACTION * crop:
        warnings.warn(
            f"{name}: the images are much smaller than the {crop}x{crop} crop (median shorter side {side} px): "
            f"each is decoded and upscaled about {crop / side:.0f}x in worker processes, which is slow and adds "
            f"no detail; use {alternative} for small images (resized once to 32x32 and held on the device)",
            stacklevel=3,
        )
