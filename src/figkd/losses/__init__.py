"""Loss functions of figkd: pure functions, modules registered as objective terms, and objectives.

Pure functions (float32 or wider, teacher detached): `ce_loss`, `kd_loss`, `dkd_loss`, `mlkd_loss`,
`dist_loss`, `figkd_loss`, `fitnet_loss`, `at_loss`, `rld_loss`, `tekap_loss`, `ldrld_loss`, `ekd_loss`,
`dml_loss`; `standardize_logits` (logit standardization, the ``standardize`` option of the logit terms).
Modules (each registered as an objective term where it is defined): `CELoss` (``ce``), `KDLoss` (``kd``),
`DKDLoss` (``dkd``), `MLKDLoss` (``mlkd``), `DISTLoss` (``dist``), `FiGKDLoss` (``figkd``), `FitNet`
(``fitnet``), `AT` (``at``), `RLDLoss` (``rld``), `TeKAPLoss` (``tekap``), `LDRLDLoss` (``ldrld``),
`EKDLoss` (``ekd``), `DMLLoss` (``dml``).
Objectives: `build_objective(spec, context=...)`, `list_terms()`, `list_presets()`, `preset_spec()`;
the input vocabulary is `figkd.losses.inputs`, the build context `BuildContext`.

A new method is one module with a pure function and a class decorated with `register_term`, and one
import line below (docs/method.md, "Adding a method").
"""

# Each method module registers its term when imported: a new method adds one import line here.
from .at import AT, at_loss
from .ce import CELoss, ce_loss
from .context import BuildContext, FeatureShapes, probe_features
from .dist import DISTLoss, dist_loss
from .dkd import DKDLoss, dkd_loss
from .dml import DMLLoss, dml_loss
from .ekd import EKDLoss, ekd_loss
from .figkd import FiGKDLoss, figkd_loss
from .fitnet import FitNet, fitnet_loss
from .inputs import VOCABULARY, Needs
from .kd import KDLoss, kd_loss
from .ldrld import LDRLDLoss, ldrld_loss
from .mlkd import MLKDLoss, mlkd_loss
from .objective import PRESETS, Objective, build_objective, list_presets, preset_spec
from .registry import TermSpec, list_terms, register_term, term_defaults, term_spec
from .rld import RLDLoss, rld_loss
from .standardize import standardize_logits
from .tekap import TeKAPLoss, tekap_loss

__all__ = [
    "AT",
    "BuildContext",
    "CELoss",
    "DISTLoss",
    "DKDLoss",
    "DMLLoss",
    "EKDLoss",
    "FeatureShapes",
    "FiGKDLoss",
    "FitNet",
    "KDLoss",
    "LDRLDLoss",
    "MLKDLoss",
    "Needs",
    "Objective",
    "PRESETS",
    "RLDLoss",
    "TeKAPLoss",
    "TermSpec",
    "VOCABULARY",
    "at_loss",
    "build_objective",
    "ce_loss",
    "dist_loss",
    "dkd_loss",
    "dml_loss",
    "ekd_loss",
    "figkd_loss",
    "fitnet_loss",
    "kd_loss",
    "ldrld_loss",
    "list_presets",
    "list_terms",
    "mlkd_loss",
    "preset_spec",
    "probe_features",
    "register_term",
    "rld_loss",
    "standardize_logits",
    "tekap_loss",
    "term_defaults",
    "term_spec",
]
