"""Training engine: recipe, trainer, evaluation, checkpoints, run directories, distributed runs."""

from .checkpoint import CheckpointManager
from .evaluate import evaluate
from .nonfinite import NonFiniteLossError
from .run import run

__all__ = ["CheckpointManager", "NonFiniteLossError", "evaluate", "run"]
