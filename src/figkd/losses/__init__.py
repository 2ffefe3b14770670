"""Loss functions of figkd: pure functions, modules registered as objective terms, and objectives.

Pure functions (float32 or wider, teacher detached): `ce_loss`, `kd_loss`, `dkd_loss`, `mlkd_loss`,
`dist_loss`, `figkd_loss`, `fitnet_loss`, `at_loss`, `ofd_loss`, `hcl_loss` (ReviewKD), `cat_kd_loss`,
`diffkd_loss`, `rld_loss`, `tekap_loss`, `ldrld_loss`, `ekd_loss`, `dml_loss`; `standardize_logits` (logit
standardization, the ``standardize`` option of the logit terms). Modules (each registered as an objective term
where it is defined): `CELoss` (``ce``), `KDLoss` (``kd``), `DKDLoss` (``dkd``), `MLKDLoss`
(``mlkd``), `DISTLoss` (``dist``), `FiGKDLoss` (``figkd``), `FitNet` (``fitnet``), `AT` (``at``), `OFD`
(``ofd``), `ReviewKD` (``reviewkd``), `CATKD` (``cat_kd``), `DiffKD` (``diffkd``), `RLDLoss` (``rld``),
`TeKAPLoss` (``tekap``), `LDRLDLoss` (``ldrld``), `EKDLoss` (``ekd``), `DMLLoss` (``dml``).
Objectives: `build_objective(spec, context=...)`, `list_terms()`, `list_presets()`, `preset_spec()`;
the input vocabulary is `figkd.losses.inputs`, the build context `BuildContext`.
Feature-based baselines: `pkt_loss` / `PKT` (``pkt``), `rkd_loss` / `RKD` (``rkd``), `sp_loss` / `SP` (``sp``),
`vid_loss` / `VID` (``vid``), `crd_loss` / `CRD` (``crd``).

A new method is one module with a pure function and a class decorated with `register_term`, and one
import line below (docs/method.md, "Adding a method").
"""

# Each method module registers its term when imported: a new method adds one import line here.
from .at import AT, at_loss
from .catkd import CATKD, cat_kd_loss
from .ce import CELoss, ce_loss
from .context import BuildContext, FeatureShapes, probe_features
from .crd import CRD, crd_loss
from .diffkd import DiffKD, diffkd_loss
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
from .ofd import OFD, ofd_loss
from .pkt import PKT, pkt_loss
from .registry import TermSpec, list_terms, register_term, term_defaults, term_spec
from .reviewkd import ReviewKD, hcl_loss
from .rkd import RKD, rkd_loss
from .rld import RLDLoss, rld_loss
from .sp import SP, sp_loss
from .standardize import standardize_logits
from .tekap import TeKAPLoss, tekap_loss
from .vid import VID, vid_loss

__all__ = [
    "AT",
    "BuildContext",
    "CATKD",
    "CELoss",
    "CRD",
    "DISTLoss",
    "DKDLoss",
    "DMLLoss",
    "EKDLoss",
    "DiffKD",
    "FeatureShapes",
    "FiGKDLoss",
    "FitNet",
    "KDLoss",
    "LDRLDLoss",
    "MLKDLoss",
    "Needs",
    "OFD",
    "Objective",
    "PKT",
    "PRESETS",
    "RKD",
    "RLDLoss",
    "ReviewKD",
    "SP",
    "TeKAPLoss",
    "TermSpec",
    "VID",
    "VOCABULARY",
    "at_loss",
    "build_objective",
    "cat_kd_loss",
    "ce_loss",
    "crd_loss",
    "diffkd_loss",
    "dist_loss",
    "dkd_loss",
    "dml_loss",
    "ekd_loss",
    "figkd_loss",
    "fitnet_loss",
    "hcl_loss",
    "kd_loss",
    "ldrld_loss",
    "list_presets",
    "list_terms",
    "mlkd_loss",
    "ofd_loss",
    "pkt_loss",
    "preset_spec",
    "probe_features",
    "register_term",
    "rkd_loss",
    "rld_loss",
    "sp_loss",
    "standardize_logits",
    "tekap_loss",
    "term_defaults",
    "term_spec",
    "vid_loss",
]
