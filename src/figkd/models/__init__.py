"""figkd.models: the paper's architectures, the user's own and Hugging Face's, their complexity, and weights I/O.

``build_model(name, num_classes)`` builds any registered model (``list_models()``), a model of
``register_model`` (`figkd.models.adapters` states the contract it meets) or ``hf:<folder or hub id>``;
the structure of ``model(x, return_features=True)`` is documented in :mod:`figkd.models.registry`.
"""

from .adapters import FeatureHooks, build_notes, check_contract, describe_model, set_input_normalization
from .checkpoints import CheckpointError, load_state_dict_file, load_teacher, load_weights, save_weights
from .complexity import Complexity, complexity
from .pretrained import InitSummary, init_from
from .registry import (
    ModelInfo,
    build_model,
    canonical_name,
    default_lr,
    get_model_info,
    list_models,
    model_slug,
    register_model,
)

__all__ = [
    "CheckpointError",
    "Complexity",
    "FeatureHooks",
    "InitSummary",
    "ModelInfo",
    "build_model",
    "build_notes",
    "canonical_name",
    "check_contract",
    "complexity",
    "default_lr",
    "describe_model",
    "get_model_info",
    "init_from",
    "list_models",
    "load_state_dict_file",
    "load_teacher",
    "load_weights",
    "model_slug",
    "register_model",
    "save_weights",
    "set_input_normalization",
]
