"""figkd: frequency-aware knowledge distillation.

The reference implementation of FiGKD (Fine-Grained Knowledge Distillation via High-Frequency
Detail Transfer, S. Kim, Expert Systems with Applications 2026, arXiv 2505.11897) and the methods,
models, datasets and training recipe it is compared with.

>>> import torch, torch.nn.functional as F
>>> from figkd import FiGKDLoss
>>> s, t, y = torch.randn(8, 100), torch.randn(8, 100), torch.randint(0, 100, (8,))
>>> loss = F.cross_entropy(s, y) + 2.0 * FiGKDLoss(100)(s, t)   # Eq. 7 with the paper's weights

Submodules: ``figkd.wavelets`` (differentiable DWT), ``figkd.grid`` (logits <-> H x W grid),
``figkd.losses``, ``figkd.models``, ``figkd.data``, ``figkd.engine``, ``figkd.experiments`` (sweeps, the
paper's tables), ``figkd.analysis`` (the paper's figures); the ``figkd`` command line.
"""

from .config import RunConfig
from .data import build_dataset, build_loader, list_datasets
from .errors import ConfigError
from .losses import (
    DISTLoss,
    DKDLoss,
    FiGKDLoss,
    KDLoss,
    MLKDLoss,
    build_objective,
    dist_loss,
    dkd_loss,
    figkd_loss,
    kd_loss,
    list_presets,
    list_terms,
    mlkd_loss,
)
from .models import build_model, complexity, list_models, load_teacher, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DISTLoss",
    "DKDLoss",
    "FiGKDLoss",
    "KDLoss",
    "MLKDLoss",
    "RunConfig",
    "build_dataset",
    "build_loader",
    "build_model",
    "build_objective",
    "complexity",
    "dist_loss",
    "dkd_loss",
    "figkd_loss",
    "kd_loss",
    "list_datasets",
    "list_models",
    "list_presets",
    "list_terms",
    "load_teacher",
    "load_weights",
    "mlkd_loss",
    "save_weights",
]
