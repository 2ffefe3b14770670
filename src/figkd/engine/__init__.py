"""Training engine: recipe, trainer, evaluation, checkpoints, run directories, distributed runs."""

from .checkpoint import CheckpointManager
from .evaluate import evaluate
from .run import run
from .trainer import NonFiniteLossError

__all__ = ["CheckpointManager", "NonFiniteLossError", "evaluate", "run"]
