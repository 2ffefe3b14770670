"""Deep mutual learning (DML; Zhang, Xiang, Hospedales and Lu, CVPR 2018).

Two or more networks (*peers*) are trained together from scratch, without a pre-trained teacher. Peer k
minimises its cross-entropy plus the mean KL divergence from the other peers' predictions to its own
(paper Eq. 10, with K peers: ``L_k = L_C(k) + 1/(K-1) sum_{l != k} KL(p_l || p_k)``), the other peers'
predictions taken as constants (detached):

    dml = T^2 * 1/(K-1) sum_{l != k} mean_b KL(softmax(z_l / T) || softmax(z_k / T)),   T = 1

This term reads the other peers' logits (vocabulary input ``peer_logits``); the engine provides them
from a two-phase step: every peer's forward runs first, then each peer's loss, backward and update
(`figkd.engine.step`; ``figkd distill --peers A B``). The paper's Algorithm 1 recomputes the
predictions after each peer's update (one more forward per peer per step); here all peers learn from
the predictions of the same step, the common implementation (one forward each).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_batch, check_logits, check_positive, full_precision, stage_list
from .registry import register_term


@full_precision
def _kl_mean(student_logits: torch.Tensor, peers: list[torch.Tensor], t: float) -> torch.Tensor:
    log_s = F.log_softmax(student_logits / t, dim=1)  # float32 or wider (full_precision)
    kls = [F.kl_div(log_s, F.log_softmax(p.detach().to(log_s.dtype) / t, dim=1), reduction="none",
                    log_target=True).sum(1).mean() for p in peers]
    return torch.stack(kls).mean() * (t * t)


def dml_loss(student_logits: torch.Tensor, peer_logits: Sequence[torch.Tensor],
             temperature: float = 1.0) -> torch.Tensor:
    """The mean over the peers of ``T^2 * mean_b KL(softmax(peer / T) || softmax(student / T))``.

    Args:
        student_logits: (B, C) logits of this peer (differentiated).
        peer_logits: the other peers' (B, C) logits, at least one (detached here); a tensor is one peer.
        temperature: T = 1 (the DML paper's softmax).
    Raises ValueError without peers or for logits of another shape, TypeError for ``peer_logits`` that
    is neither a list of tensors nor a tensor.
    """
    peers = stage_list(peer_logits, "dml_loss", "peer_logits", "peer")
    if not peers:
        raise ValueError("dml_loss: needs the logits of at least one other peer (a DML run has 2 or more peers: "
                         "figkd distill --peers A B)")
    check_batch("dml_loss", student_logits=student_logits, peer_logits=peers)
    for p in peers:
        check_logits(student_logits, p, name="dml_loss")
    t = check_positive(temperature, "dml_loss: temperature")
    return _kl_mean(student_logits, peers, t)


@register_term("dml", inputs=("student_logits", "peer_logits"), function=dml_loss,
               source="Zhang et al. CVPR 2018 (Deep Mutual Learning), Eq. 10 (K peers), T = 1",
               help="deep mutual learning: the mean KL from the other peers' predictions (figkd distill --peers)",
               presets={
                   # DML: Zhang et al. CVPR 2018 Eq. 10: CE + the mean KL to the other peers at T = 1 (the term's
                   # default) (figkd distill --peers A B).
                   "dml": [{"term": "ce"}, {"term": "dml"}],
               })
class DMLLoss(nn.Module):
    """`dml_loss` as a module: ``DMLLoss(temperature=1.0)(student_logits, peer_logits)``."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "DMLLoss: temperature")

    def forward(self, student_logits: torch.Tensor, peer_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return dml_loss(student_logits, peer_logits, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
