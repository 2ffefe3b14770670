"""Loss functions of figkd: pure functions, thin `nn.Module` wrappers and the objective registry.

Pure functions (float32 or wider, teacher detached): `ce_loss`, `kd_loss`, `dkd_loss`, `mlkd_loss`,
`dist_loss`, `figkd_loss`. Modules: `CELoss`, `KDLoss`, `DKDLoss`, `MLKDLoss`, `DISTLoss`,
`FiGKDLoss`. Objectives: `build_objective(spec)`, `list_terms()`, `list_presets()`, `preset_spec()`.
"""

from .ce import CELoss, ce_loss
from .dist import DISTLoss, dist_loss
from .dkd import DKDLoss, dkd_loss
from .figkd import FiGKDLoss, figkd_loss
from .kd import KDLoss, kd_loss
from .mlkd import MLKDLoss, mlkd_loss
from .objective import (
    PRESETS,
    Objective,
    TermDef,
    build_objective,
    list_presets,
    list_terms,
    preset_spec,
    register_term,
    term_defaults,
)

__all__ = [
    "CELoss",
    "DISTLoss",
    "DKDLoss",
    "FiGKDLoss",
    "KDLoss",
    "MLKDLoss",
    "Objective",
    "PRESETS",
    "TermDef",
    "build_objective",
    "ce_loss",
    "dist_loss",
    "dkd_loss",
    "figkd_loss",
    "kd_loss",
    "list_presets",
    "list_terms",
    "mlkd_loss",
    "preset_spec",
    "register_term",
    "term_defaults",
]
