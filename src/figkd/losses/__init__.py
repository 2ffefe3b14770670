"""Loss functions of figkd: pure functions, modules registered as objective terms, and objectives.

Each method is one module: a pure function (``<method>_loss``: float32 or wider, teacher detached; the
logit terms take ``standardize=``, `standardize_logits`) and an ``nn.Module`` registered where it is
defined with `register_term`, which also declares the method's objective presets and help text. This
package exports, for every registered term, its module and its pure function (``__all__`` is derived
from the registrations); the terms are listed at the end of this docstring.

Objectives: `build_objective(spec, context=...)`, `check_options(spec)` (option values, without models or
data), `list_terms()`, `list_presets()`, `preset_spec()`,
`term_spec()`, `term_defaults()`; what an objective resolves to, its report label and its run-directory
name: `describe()` (`figkd.losses.description`). The input vocabulary is `figkd.losses.inputs`, the build
context `BuildContext`.

A new method is one module and one import line below (docs/method.md, "Adding a method"); a method
outside the package is one module named in ``FIGKD_PLUGINS`` (`figkd.plugins`).
"""
# ruff: noqa: F401 - the names imported here are re-exported; __all__ is derived from the registry below.

from . import registry as _registry
from ._common import full_precision
from .context import BuildContext, FeatureShapes, MissingContextError, probe_features
from .description import Description, describe
from .inputs import VOCABULARY, Needs
from .objective import Objective, build_objective, check_options
from .registry import TermSpec, list_presets, list_terms, preset_spec, register_term, term_defaults, term_spec
from .standardize import standardize_logits

# The methods, one import line each. Importing a method's module registers its term and its presets; the
# presets are listed in the order of these lines (figkd distill --help, docs/method.md section 5).
# isort: off
from .ce import CELoss, ce_loss
from .kd import KDLoss, kd_loss
from .dkd import DKDLoss, dkd_loss
from .mlkd import MLKDLoss, mlkd_loss
from .dist import DISTLoss, dist_loss
from .figkd import FiGKDLoss, figkd_loss
from .fitnet import FitNet, fitnet_loss
from .at import AT, at_loss
from .pkt import PKT, pkt_loss
from .rkd import RKD, rkd_loss
from .sp import SP, sp_loss
from .vid import VID, vid_loss
from .crd import CRD, crd_loss
from .ofd import OFD, ofd_loss
from .reviewkd import ReviewKD, hcl_loss
from .catkd import CATKD, CATKDFeats, cat_kd_feats_loss, cat_kd_loss
from .diffkd import DiffKD, diffkd_loss
from .rld import RLDLoss, rld_loss
from .tekap import TeKAPLoss, tekap_loss
from .ldrld import LDRLDLoss, ldrld_loss
from .ekd import EKDLoss, ekd_loss
from .dml import DMLLoss, dml_loss
# isort: on

__all__ = sorted({
    "BuildContext", "Description", "FeatureShapes", "MissingContextError", "Needs", "Objective", "TermSpec",
    "VOCABULARY", "build_objective", "check_options", "describe", "full_precision", "list_presets", "list_terms",
    "preset_spec", "probe_features",
    "register_term",
    "standardize_logits", "term_defaults", "term_spec",
    *_registry.public_names(),  # each registered term's module and pure function
})

if __doc__:  # None under python -OO
    __doc__ += "\nThe registered terms (``term``: module, pure function):\n\n" + _registry.terms_overview() + "\n"
