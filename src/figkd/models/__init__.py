"""figkd.models: the paper's architectures, their complexity, and checkpoint I/O.

``build_model(name, num_classes)`` builds any registered model (``list_models()``); the structure of
``model(x, return_features=True)`` is documented in :mod:`figkd.models.registry`.
"""

from .checkpoints import CheckpointError, load_state_dict_file, load_teacher, load_weights, save_weights
from .complexity import Complexity, complexity
from .registry import ModelInfo, build_model, canonical_name, default_lr, get_model_info, list_models

__all__ = [
    "CheckpointError",
    "Complexity",
    "ModelInfo",
    "build_model",
    "canonical_name",
    "complexity",
    "default_lr",
    "get_model_info",
    "list_models",
    "load_state_dict_file",
    "load_teacher",
    "load_weights",
    "save_weights",
]
