"""The batch a loader yields: a small named structure, not a positional tuple."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """One batch on the loader's device.

    - ``images``: (B, 3, H, W) float32, normalised (the weak view in training);
    - ``target``: (B,) int64 class indices;
    - ``strong``: (B, 3, H, W) float32, the strongly augmented view of the same images (training
      loaders built with ``strong_view=True``; MLKD), else None;
    - ``index``: (B,) int64 index of each sample in its split (training: the sample's row in the
      training set, as CRD's memory bank needs), or None.
    """

    images: torch.Tensor
    target: torch.Tensor
    strong: torch.Tensor | None = None
    index: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors present, in field order (images, target, strong, index): for comparisons."""
        return tuple(t for t in (self.images, self.target, self.strong, self.index) if t is not None)
