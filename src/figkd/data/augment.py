"""Recipes and batched, deterministic augmentation.

Every random number is drawn on the CPU from a ``torch.Generator`` seeded by :func:`derive_seed` from
``(seed, epoch, step, ...)``; only the small parameter tensors move to the device. The image operations
themselves are deterministic functions of (image, parameters), computed per sample (element-wise
arithmetic, integer histograms, index gathers — no batch reductions, no convolutions), so a sample's
result does not depend on which other samples share its batch: that is what makes ``iter_from(k)`` and
the union of DDP ranks bit-identical to a plain single-process iteration.

Recipes (paper Section 4.2 and the codebases it follows):

- ``cifar``: 4-pixel zero padding, random 32x32 crop, horizontal flip; test: normalisation only. Mean and
  std of mdistiller (megvii-research/mdistiller, ``mdistiller/dataset/cifar100.py``) and RepDistiller.
- ``tiny_imagenet``: 64x64, 8-pixel zero padding and random crop, horizontal flip (the issue's recipe;
  mdistiller itself uses RandomRotation(20) + flip). Mean/std of mdistiller
  (``mdistiller/dataset/tiny_imagenet.py``: mean (0.4802, 0.4481, 0.3975), std (0.2302, 0.2265, 0.2262));
  :func:`figkd.data.stats.compute_mean_std` recomputes them from your copy.
- ``digits``: the ``cifar`` geometry with the mean/std of the digits training split (computed by
  :func:`figkd.data.stats.compute_mean_std`, pinned here and checked by a test).
- ``fgvr_224``: RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3) + horizontal flip (paper Section
  4.1.2); test: shorter side 256, centre crop 224; ImageNet mean/std.
- ``strong`` (MLKD's second view, Jin et al., CVPR 2023, ``mdistiller/dataset/cifar100.py`` of
  Jin-Ying/Multi-Level-Logit-Distillation): its own crop and flip, then RandAugment (2 ops, magnitude 10)
  and cutout. See :func:`rand_augment` and :func:`cutout` for the exact operations.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import asdict, dataclass, field

import torch

__all__ = [
    "RANDAUG_OPS",
    "RECIPES",
    "Recipe",
    "StrongRecipe",
    "STRONG",
    "cutout",
    "derive_seed",
    "draw_pad_crop",
    "draw_strong",
    "make_generator",
    "normalize",
    "pad_crop_flip",
    "rand_augment",
    "sample_resized_crop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """One preprocessing recipe. ``kind`` is ``"pad_crop"`` (small images resident on the device) or
    ``"resized_crop"`` (JPEGs decoded and cropped by worker processes)."""

    name: str
    kind: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad: int = 0
    flip: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    test_resize: int = 0
    source: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.kind == "pad_crop":
            for k in ("scale", "ratio", "test_resize"):
                d.pop(k)
        else:
            d.pop("pad")
        return d


@dataclass(frozen=True)
class StrongRecipe:
    """MLKD's strong view: the base recipe's crop/flip (drawn independently of the first view), then
    RandAugment and cutout, then the base recipe's normalisation."""

    name: str = "strong"
    num_ops: int = 2
    magnitude: int = 10
    num_magnitude_bins: int = 31
    ops: tuple[str, ...] = field(default=())
    cutout_max_fraction: float = 0.5
    cutout_fill: tuple[int, int, int] = (125, 123, 114)
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _idx_recipes(
    name: str, native: tuple[float, float], padded: tuple[float, float], *, flip: bool, source: str
) -> dict[str, Recipe]:
    """The recipes ``<name>`` (28x28) and ``<name>_32`` (zero-padded to 32x32) of one MNIST-family set:
    grey images copied to 3 channels, so mean and std repeat over the channels."""
    geometry = "; +-4-pixel translation (pad 4, random crop)" + (", horizontal flip" if flip else ", no flip")
    return {
        n: Recipe(n, "pad_crop", size, (m,) * 3, (s,) * 3, pad=4, flip=flip, source=source + geometry)
        for n, size, (m, s) in ((name, 28, native), (f"{name}_32", 32, padded))
    }


RECIPES: dict[str, Recipe] = {
    "cifar": Recipe(
        "cifar",
        "pad_crop",
        32,
        (0.5071, 0.4867, 0.4408),
        (0.2675, 0.2565, 0.2761),
        pad=4,
        source="megvii-research/mdistiller mdistiller/dataset/cifar100.py (as RepDistiller): "
        "RandomCrop(32, padding=4), RandomHorizontalFlip, Normalize",
    ),
    "tiny_imagenet": Recipe(
        "tiny_imagenet",
        "pad_crop",
        64,
        (0.4802, 0.4481, 0.3975),
        (0.2302, 0.2265, 0.2262),
        pad=8,
        source="mean/std: megvii-research/mdistiller mdistiller/dataset/tiny_imagenet.py; "
        "geometry: pad 8 + random crop 64 + flip (figkd issue 4)",
    ),
    "digits": Recipe(
        "digits",
        "pad_crop",
        32,
        (0.3054, 0.3054, 0.3054),
        (0.3760, 0.3760, 0.3760),
        pad=4,
        source="cifar geometry; mean/std of the digits training split (figkd.data.stats.compute_mean_std)",
    ),
    # The MNIST family (figkd.data.idx): a +-4-pixel translation (the cifar recipe's 4-pixel zero padding
    # and random crop) at both sizes; no flip for the digits and characters (mirror images are not
    # digits), a flip for Fashion-MNIST's garments. The *_32 values follow exactly from the 28x28 ones
    # for the 2-pixel zero border: mean * 784 / 1024 and E[x^2] * 784 / 1024.
    **_idx_recipes(
        "mnist",
        (0.1307, 0.3081),
        (0.1001, 0.2752),
        flip=False,
        source="mean/std of the MNIST training split as published with PyTorch's example "
        "(pytorch/examples mnist/main.py, Normalize((0.1307,), (0.3081,)))",
    ),
    **_idx_recipes(
        "fashion_mnist",
        (0.2860, 0.3530),
        (0.2190, 0.3318),
        flip=True,
        source="mean/std of the Fashion-MNIST training split, computed by figkd.data.stats.compute_mean_std "
        "on the files of Debian's dataset-fashion-mnist (checked by a test where they are installed)",
    ),
    **_idx_recipes(
        "kmnist",
        (0.1307, 0.3081),
        (0.1001, 0.2752),
        flip=False,
        source="not KMNIST's own statistics: the normalisation of the KMNIST authors' PyTorch benchmark "
        "(rois-codh/kmnist benchmarks/pytorch_kmnist.py, MNIST's Normalize((0.1307,), (0.3081,))); "
        "set mean/std to auto in the run configuration for your copy's own",
    ),
    "digits_16": Recipe(
        "digits_16",
        "pad_crop",
        16,
        (0.3054, 0.3054, 0.3054),
        (0.3760, 0.3760, 0.3760),
        pad=2,
        source="the digits recipe at half the size (pad 2 of 16 = pad 4 of 32, flip); the same mean/std: "
        "nearest upscaling repeats every pixel equally often",
    ),
    "fgvr_224": Recipe(
        "fgvr_224",
        "resized_crop",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        test_resize=256,
        source="paper Section 4.1.2 (RandomResizedCrop(224)); torchvision ImageNet reference recipe: "
        "scale (0.08, 1), ratio (3/4, 4/3), flip; test Resize(256) + CenterCrop(224); ImageNet mean/std",
    ),
}

# torchvision's RandAugment operation space (pytorch/vision torchvision/transforms/autoaugment.py,
# RandAugment._augmentation_space): 14 operations, magnitudes on a 31-bin scale.
RANDAUG_OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
_GEOMETRIC = {"shear_x", "shear_y", "translate_x", "translate_y", "rotate"}

STRONG = StrongRecipe(
    ops=RANDAUG_OPS,
    source="MLKD (Jin-Ying/Multi-Level-Logit-Distillation mdistiller/dataset/cifar100.py): weak and strong "
    "views, strong = crop + flip + RandAugment(2, 10) + cutout (side U(0, 0.5) x width, "
    "fill (125, 123, 114)); "
    "operations and magnitudes: torchvision RandAugment (num_magnitude_bins=31), chosen per sample",
)


# ------------------------------------------------------------------------------------------ seeding
def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts`` (ints and strings) via BLAKE2b: stable across processes, Python
    versions and platforms (unlike ``hash``)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if isinstance(p, str):
            h.update(b"s" + p.encode() + b"\0")
        else:
            h.update(b"i" + struct.pack("<q", int(p)))
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def make_generator(*parts: int | str) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(*parts))
    return g


# --------------------------------------------------------------------------------- pad, crop, flip
def draw_pad_crop(g: torch.Generator, n: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample crop offsets ``(n, 2)`` in ``[0, 2 * pad]`` (row, col in the padded image) and flips."""
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    return offsets, flips


def pad_crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad each ``(n, C, H, W)`` image by ``pad``, crop ``H x W`` at ``offsets`` and mirror the
    rows of the flipped samples, as one gather (no padded copy is materialised). Any dtype."""
    n, c, h, w = images.shape
    dev = images.device
    offsets = offsets.to(dev, non_blocking=True)
    flips = flips.to(dev, non_blocking=True)
    i = torch.arange(h, device=dev)
    j = torch.arange(w, device=dev)
    rows = offsets[:, :1] + i - pad  # (n, h)
    jj = torch.where(flips[:, None], w - 1 - j, j)
    cols = offsets[:, 1:] + jj - pad  # (n, w)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    out = images.reshape(n, c, h * w).gather(2, flat.reshape(n, 1, h * w).expand(n, c, h * w))
    out = out.reshape(n, c, h, w)
    return out.masked_fill(~valid[:, None], 0)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) ``(n, 3, H, W)`` -> float32 ``(x / 255 - mean) / std``; ``mean`` and
    ``std`` are ``(1, 3, 1, 1)`` float32 tensors on the images' device."""
    x = images.float() if images.dtype != torch.float32 else images.clone()
    return x.div_(255.0).sub_(mean).div_(std)


# --------------------------------------------------------------------------------- resized crop
def sample_resized_crop(
    width: int, height: int, g: torch.Generator, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """``(left, top, w, h)`` of a random resized crop: torchvision's ``RandomResizedCrop.get_params``
    (10 attempts of area fraction ~ U(scale) and log-uniform aspect ratio, then a centre-crop fallback),
    with the random numbers drawn from ``g``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=g, dtype=torch.float64).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


# ------------------------------------------------------------------------------------- RandAugment
def draw_strong(g: torch.Generator, n: int, num_ops: int = 2) -> dict[str, torch.Tensor]:
    """Per-sample RandAugment and cutout parameters: operation indices ``(n, num_ops)`` (with
    replacement, as torchvision), signs ``(n, num_ops)`` in {-1, 1} and cutout ``(n, 3)`` uniforms."""
    ops = torch.randint(0, len(RANDAUG_OPS), (n, num_ops), generator=g)
    signs = torch.randint(0, 2, (n, num_ops), generator=g) * 2 - 1
    cut = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return {"ops": ops, "signs": signs, "cutout": cut}


def _magnitudes(magnitude: int, bins: int, height: int, width: int) -> dict[str, float]:
    """torchvision's RandAugment magnitude of each operation at ``magnitude`` of ``bins`` bins."""
    f = magnitude / (bins - 1)
    return {
        "shear_x": 0.3 * f,
        "shear_y": 0.3 * f,
        "translate_x": float(int(150.0 / 331.0 * width * f)),
        "translate_y": float(int(150.0 / 331.0 * height * f)),
        "rotate": 30.0 * f,
        "brightness": 0.9 * f,
        "color": 0.9 * f,
        "contrast": 0.9 * f,
        "sharpness": 0.9 * f,
        "posterize": float(8 - int(round(magnitude / ((bins - 1) / 4)))),
        "solarize": 255.0 * (1.0 - f),
    }


def _affine_matrix(op: str, mag: float, h: int, w: int) -> tuple[float, ...]:
    """Inverse map (output -> source) ``(a, b, c, d, e, f)``: ``sx = a x + b y + c``,
    ``sy = d x + e y + f`` in continuous pixel coordinates (pixel (i, j) has centre (j + .5, i + .5)).
    Shears about the top-left corner (torchvision's RandAugment uses ``center=[0, 0]``), rotation about
    the image centre, translations by whole pixels."""
    if op == "shear_x":
        return (1.0, -mag, 0.0, 0.0, 1.0, 0.0)
    if op == "shear_y":
        return (1.0, 0.0, 0.0, -mag, 1.0, 0.0)
    if op == "translate_x":
        return (1.0, 0.0, -mag, 0.0, 1.0, 0.0)
    if op == "translate_y":
        return (1.0, 0.0, 0.0, 0.0, 1.0, -mag)
    if op == "rotate":
        t = math.radians(mag)
        cs, sn = math.cos(t), math.sin(t)
        cx, cy = w / 2.0, h / 2.0
        return (cs, -sn, cx - cs * cx + sn * cy, sn, cs, cy - sn * cx - cs * cy)
    raise ValueError(op)


def _warp_nearest(x: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour affine warp of ``(n, C, H, W)`` with per-sample inverse maps ``(n, 6)``;
    pixels mapped from outside the image are 0 (torchvision's default fill)."""
    n, c, h, w = x.shape
    dev = x.device
    m = mats.to(device=dev, dtype=torch.float32)[:, :, None, None]
    xs = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5)[None, None, :]
    ys = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5)[None, :, None]
    sx = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]  # (n, h, w)
    sy = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    col = torch.floor(sx).long()
    row = torch.floor(sy).long()
    valid = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).reshape(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, flat).reshape(n, c, h, w)
    return out.masked_fill(~valid[:, None], 0)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` of a uint8 image (truncated to an integer), ``(n, 1, H, W)``."""
    return torch.floor(0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(img: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` for uint8: ``factor * img + (1 - factor) * other``, clamped, truncated."""
    f = factor[:, None, None, None]
    return torch.floor((f * img + (1.0 - f) * other).clamp_(0.0, 255.0))


def _sharpness_degenerate(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 smoothing [[1,1,1],[1,5,1],[1,1,1]] / 13 of PIL/torchvision, rounded, borders unchanged.
    Integer sums of shifted views (exact in float32), so per-sample results never depend on the batch."""
    h, w = x.shape[-2:]
    if h < 3 or w < 3:
        return x.clone()
    s = 4.0 * x[..., 1:-1, 1:-1]
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            s = s + x[..., di : di + h - 2, dj : dj + w - 2]
    out = x.clone()
    out[..., 1:-1, 1:-1] = torch.round(s / 13.0)
    return out


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    mn = x.amin(dim=(-2, -1), keepdim=True)
    mx = x.amax(dim=(-2, -1), keepdim=True)
    same = mx <= mn
    scale = torch.where(same, torch.ones_like(mx), 255.0 / (mx - mn).clamp_min(1.0))
    mn = torch.where(same, torch.zeros_like(mn), mn)
    return torch.floor(((x - mn) * scale).clamp_(0.0, 255.0))


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation with torchvision's (PIL's) lookup table, in integers."""
    n, c, h, w = x.shape
    v = x.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    last = hist.gather(1, v.amax(dim=1, keepdim=True))  # count of the last non-zero bin
    step = (h * w - last) // 255  # (n*c, 1)
    lut = (hist.cumsum(1) + step // 2) // step.clamp_min(1)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp_(0, 255)
    out = torch.where(step == 0, v, lut.gather(1, v))
    return out.reshape(n, c, h, w).to(x.dtype)


def _enhance(op: str, x: torch.Tensor, mag: float, signs: torch.Tensor) -> torch.Tensor:
    factor = (1.0 + mag * signs.to(torch.float32)).to(x.device)
    if op == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if op == "color":
        return _blend(x, _grey(x), factor)
    if op == "contrast":
        # float64 sums of integers: exact, hence independent of reduction order and batch size
        mean = _grey(x).double().sum(dim=(-2, -1), keepdim=True) / (x.shape[-1] * x.shape[-2])
        return _blend(x, mean.float(), factor)
    if op == "sharpness":
        return _blend(x, _sharpness_degenerate(x), factor)
    raise ValueError(op)


def rand_augment(
    x: torch.Tensor, ops: torch.Tensor, signs: torch.Tensor, *, magnitude: int = 10, num_bins: int = 31
) -> torch.Tensor:
    """RandAugment on a float ``(n, 3, H, W)`` batch holding integer values 0..255.

    Each sample applies ``ops.shape[1]`` operations in turn, ``ops[i, k]`` indexing
    :data:`RANDAUG_OPS`, with torchvision's semantics for uint8 images and its magnitudes at
    ``magnitude`` of ``num_bins`` (at 10 of 31: shear 0.1, translate int(0.151 x side) px, rotate
    10 degrees, brightness/colour/contrast/sharpness factor 1 +- 0.3, posterize 7 bits, solarize at
    170), the sign of the signed operations given by ``signs`` (+-1). Geometric operations use
    nearest-neighbour sampling and fill 0. ``ops`` and ``signs`` are CPU tensors: the samples of each
    operation are grouped on the CPU, so no device synchronisation happens.

    kornia's ``RandAugment`` draws one set of operations per call, shared by the whole batch
    (``rand_selector``: one ``randperm`` per forward, kornia 0.9), so it cannot give per-sample choices;
    this implementation chooses them per sample, as torchvision does per image.
    """
    n, _, h, w = x.shape
    mags = _magnitudes(magnitude, num_bins, h, w)
    out = x.clone()
    dev = x.device
    for k in range(ops.shape[1]):
        col, sgn = ops[:, k], signs[:, k]
        geo_idx, geo_mats = [], []
        for op_i, op in enumerate(RANDAUG_OPS):
            idx = (col == op_i).nonzero().flatten()
            if op == "identity" or idx.numel() == 0:
                continue
            if op in _GEOMETRIC:
                for i in idx.tolist():
                    geo_idx.append(i)
                    geo_mats.append(_affine_matrix(op, mags[op] * float(sgn[i]), h, w))
                continue
            d_idx = idx.to(dev, non_blocking=True)
            sub = out.index_select(0, d_idx)
            if op in ("brightness", "color", "contrast", "sharpness"):
                sub = _enhance(op, sub, mags[op], sgn[idx])
            elif op == "posterize":
                q = 2.0 ** (8 - int(mags[op]))
                sub = torch.floor(sub / q) * q
            elif op == "solarize":
                sub = torch.where(sub >= mags[op], 255.0 - sub, sub)
            elif op == "autocontrast":
                sub = _autocontrast(sub)
            elif op == "equalize":
                sub = _equalize(sub)
            out.index_copy_(0, d_idx, sub)
        if geo_idx:
            d_idx = torch.tensor(geo_idx, dtype=torch.long).to(dev, non_blocking=True)
            mats = torch.tensor(geo_mats, dtype=torch.float64)
            out.index_copy_(0, d_idx, _warp_nearest(out.index_select(0, d_idx), mats))
    return out


def cutout(
    x: torch.Tensor,
    params: torch.Tensor,
    *,
    max_fraction: float = 0.5,
    fill: tuple[int, int, int] = (125, 123, 114),
) -> torch.Tensor:
    """MLKD's cutout on a float 0..255 batch: a square of side ``v = u0 * max_fraction * W`` centred
    at ``(u1 * W, u2 * H)``, its top-left corner ``(int(max(0, cx - v / 2)), int(max(0, cy - v / 2)))``,
    clipped to the image (rows ``y0 <= i < y0 + v``, columns ``x0 <= j < x0 + v``), filled with ``fill``.
    ``params`` are the ``(n, 3)`` uniforms ``(u0, u1, u2)`` on the CPU."""
    n, c, h, w = x.shape
    v = params[:, 0] * max_fraction * w
    x0 = torch.floor((params[:, 1] * w - v / 2).clamp_min(0))
    y0 = torch.floor((params[:, 2] * h - v / 2).clamp_min(0))
    box = torch.stack([x0, y0, x0 + v, y0 + v], dim=1).to(device=x.device, dtype=torch.float32)
    j = torch.arange(w, device=x.device, dtype=torch.float32)
    i = torch.arange(h, device=x.device, dtype=torch.float32)
    inside = ((j[None, :] >= box[:, 0:1]) & (j[None, :] < box[:, 2:3]))[:, None, :] & (
        (i[None, :] >= box[:, 1:2]) & (i[None, :] < box[:, 3:4])
    )[:, :, None]  # (n, h, w)
    fill_t = torch.tensor(fill, dtype=x.dtype, device=x.device)[None, :, None, None]
    return torch.where(inside[:, None], fill_t, x)
