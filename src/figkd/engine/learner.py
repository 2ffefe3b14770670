"""The Learner: one student together with its objective's trainable modules and buffers.

A feature-based method trains more than the student: FitNet's connector, CRD's embedding heads and
memory banks. The Learner is the one module that holds all of it, so that everything that must see
it does: the optimizer (``learner.parameters()``: the student's first, then the objective's), DDP
(the Learner is what is wrapped, so connector gradients are all-reduced too), the checkpoint and
``--resume`` (:meth:`Learner.objective_state`), and the captured step (every parameter and buffer is
a persistent tensor of the graph).

The exported weights stay the student's alone (``best.safetensors``, ``epoch_*.safetensors``: the
model's state dict, which ``figkd eval``, teacher loading and users' code read); the objective's
state lives in the training state file beside them.

:meth:`Learner.forward` does the student's side of a step: the forward passes the objective needs
(stage features, the strong view), the inputs gathered by name from the vocabulary
(`figkd.losses.inputs`), and the objective, all under the caller's autocast. A run whose terms read the
other peers' logits (DML, ``peer_logits``) splits it in two: ``forward(..., outputs_only=True)`` (the
student's forward passes: through DDP's wrapper, like any forward) for every peer first, then
:meth:`Learner.losses` of each peer with the others' detached logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batch import Batch
from ..errors import ConfigError
from ..losses import BuildContext, build_objective
from ..losses.objective import Objective
from .teacher import forward_outputs


class Learner(nn.Module):
    """``model`` (the student) and ``objective`` (an `figkd.losses.Objective`) trained as one."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective
        needs = objective.needs
        self._inputs = needs.inputs
        self._features = needs.features("student")
        self._cams = needs.cams("student")
        self._strong = needs.strong("student")

    @property
    def needs(self):
        """What the objective's terms declare (`figkd.losses.inputs.Needs`)."""
        return self.objective.needs

    def forward(self, batch: Batch, teacher: dict[str, Any], epoch: torch.Tensor, *, outputs_only: bool = False):
        """The objective's terms on ``batch`` and the student's logits (for the training accuracy).

        ``teacher``: the teacher's outputs by vocabulary name (`figkd.engine.teacher.TeacherForward`),
        empty without a teacher; ``epoch``: the 0-dim 1-based epoch tensor of the warm-ups. With
        ``outputs_only``, only the student's forward passes: their outputs by vocabulary name (the first
        phase of a step whose terms read the other peers' logits; then :meth:`losses`).
        """
        outputs = self.student_outputs(batch)
        if outputs_only:
            return outputs
        return self.losses(outputs, batch, teacher, epoch)

    def student_outputs(self, batch: Batch) -> dict[str, Any]:
        """The student's forward passes the objective needs: logits, stage features, the strong view."""
        outputs = forward_outputs(self.model, batch.images, "student", self._features, self._cams)
        if self._strong:
            outputs["student_logits_strong"] = self.model(batch.strong)
        return outputs

    def losses(self, outputs: dict[str, Any], batch: Batch, teacher: dict[str, Any], epoch: torch.Tensor,
               peer_logits: list[torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The objective's terms from the student's ``outputs`` (:meth:`student_outputs`), the teacher's,
        the batch, the epoch and the other peers' detached logits; and the student's logits."""
        inputs = {**outputs, **teacher, "target": batch.target, "index": batch.index, "epoch": epoch,
                  "peer_logits": peer_logits}
        terms = self.objective(**{k: v for k, v in inputs.items() if k in self._inputs})
        return terms, outputs["student_logits"]

    def objective_state(self) -> dict[str, torch.Tensor]:
        """The objective's parameters and buffers (connectors, memory banks), for the training state."""
        return self.objective.state_dict()

    def load_objective_state(self, state: dict[str, torch.Tensor] | None, where: str) -> None:
        """Restore :meth:`objective_state`. A checkpoint without it (written before the objective had
        state) is accepted only for an objective without parameters or buffers."""
        own = self.objective.state_dict()
        if state is None:
            if own:
                raise ConfigError(f"{where} holds no state of the objective, whose terms have parameters or "
                                  f"buffers ({', '.join(list(own)[:3])}, ...): it cannot be resumed exactly")
            return
        try:
            self.objective.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{where}: the saved objective state does not fit this objective ({first})") from None

    def check_not_sharing(self, teacher: nn.Module | None) -> None:
        """Refuse an objective that holds the teacher's parameters or buffers: the optimizer would
        train the teacher. A term must copy what it reads from the teacher (``.detach().clone()``)."""
        if teacher is None:
            return
        theirs = {id(t) for t in (*teacher.parameters(), *teacher.buffers())}
        shared = [name for name, t in (*self.objective.named_parameters(), *self.objective.named_buffers())
                  if id(t) in theirs]
        if shared:
            raise ConfigError(f"the objective holds the teacher's tensors ({', '.join(shared[:3])}): a term must copy "
                              "what it reads from the teacher (build context, teacher_module), not keep the module")


def build_learner(model: torch.nn.Module, spec: Any, *, teacher: torch.nn.Module | None, num_classes: int,
                  input_size: tuple[int, int], train_size: int | None = None, train_targets=None,
                  seed: int = 0) -> Learner:
    """A `Learner` of ``model`` with the objective ``spec`` (preset name or term list) built from the
    context of this pair: feature shapes probed at ``input_size`` on the meta device, the class count,
    the training-set size and labels (``train_targets``), the teacher and the run's seed. Continues the
    global torch RNG (seed it before).

    A term with a ``prepare_student(model)`` method is given the student once, after the objective is built
    and before the optimizer exists: what the method's official code changes in the student it trains
    (CAT-KD's bias-free classifier, `figkd.losses.catkd.CATKD.prepare_student`). It runs on every build, so a
    resumed run makes the same change before its weights are loaded."""
    try:
        context = BuildContext.from_models(model, teacher, input_size=input_size, num_classes=num_classes,
                                           train_size=train_size, train_targets=train_targets, seed=seed)
        objective = build_objective(spec, context=context)
        for term in objective.terms:  # a term that changes the student it trains (CAT-KD: a bias-free classifier)
            prepare = getattr(term, "prepare_student", None)
            if prepare is not None:
                prepare(model)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"objective {spec!r}: {exc}") from exc
    return Learner(model, objective)
