"""Contrastive representation distillation (Tian et al., ICLR 2020), as in RepDistiller.

Official code: HobbitLong/RepDistiller ``crd/criterion.py`` (``CRDLoss``, ``Embed``, ``ContrastLoss``),
``crd/memory.py`` (``ContrastMemory``) and ``dataset/cifar100.py`` (``CIFAR100InstanceSample``, which
draws the negatives), with the defaults of ``train_student.py`` (``--feat_dim 128``, ``--nce_k 16384``,
``--nce_t 0.07``, ``--nce_m 0.5``, ``--mode exact``) and the weights of its README (CE 1, CRD 0.8; the
same in mdistiller ``mdistiller/engine/cfg.py``, ``CFG.CRD``: the ``crd`` preset).

One step, for a batch of B samples with rows ``index`` in a training set of N samples:

1. **Embeddings**: each side's penultimate feature goes through a linear head to 128 dimensions and is
   L2-normalised: ``v_s = normalize(W_s f_s + b_s)``, ``v_t = normalize(W_t f_t + b_t)`` (both heads
   trained with the student).
2. **Negatives**: K = 16384 rows drawn uniformly from the samples of the *other* classes, without
   replacement (with replacement where a class has fewer than K other-class samples: the official
   ``np.random.choice(cls_negative[target], k, replace=k > len(cls_negative[target]))``). Drawn from
   `figkd.losses.random`, keyed by (seed, epoch, sample row), never from the global generator: one
   process of batch N*b and N processes of batch b draw the same rows, and ``--resume`` repeats them.
3. **Scores**: two memory banks of N x 128 (``memory_student``, ``memory_teacher``, uniform in
   ``[-1/sqrt(128/3), 1/sqrt(128/3)]`` at start) give, for the student anchor, ``P_s(j) = exp(v_s .
   m_t[j] / T) / Z_s`` over the positive row ``j = index`` and the K negatives (the teacher's bank), and
   symmetrically ``P_t`` with the student's bank; T = 0.07. ``Z_s``, ``Z_t`` are set once, at the first
   step, to N times the mean of ``exp(. / T)`` over the batch's B (K + 1) scores, as the official code
   does, and kept (buffer ``normalizers``).
4. **Loss** (`crd_loss`, ``ContrastLoss`` of the official code, Eq. 18 of the paper): with ``m = K``
   and ``P_n = 1 / N``,
   ``L = -(1/B) sum_b [ log(P_pos / (P_pos + m P_n + eps)) + sum_neg log(m P_n / (P_neg + m P_n + eps)) ]``,
   ``eps = 1e-7``, for each anchor; the two are summed.
5. **Memory update** (in place, no gradient): ``m[index] <- normalize(0.5 m[index] + 0.5 v)`` for each
   side's bank with its own embeddings.

How it is computed here (same values, another order of operations): the scores of step 3 are taken
from the full (B, N) products ``v_s M_t^T`` and ``v_t M_s^T``, and each negative enters with its
multiplicity (a (B, N) count matrix built from the drawn rows), instead of gathering B (K + 1) bank rows
of 128 floats (537 MB per bank at B = 64, K = 16384, which the official code does). There is no
scatter of gradients over duplicated rows, so the backward pass is deterministic. ``Z`` is set without
a host read (``torch.where`` on the buffer), so the step can be captured.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import check_batch, check_features, check_positive, full_precision
from .random import make_key, random_bits
from .registry import register_term

_INT64_MAX = torch.iinfo(torch.int64).max


def _nce(positive: torch.Tensor, negative: torch.Tensor, weights: torch.Tensor | None, num_negatives: int,
         num_data: int, eps: float) -> torch.Tensor:
    """ContrastLoss on positive scores (B,) and negative scores (B, M) weighted by ``weights`` (their
    multiplicities; None: each column once), with m = ``num_negatives`` and P_n = 1 / ``num_data``."""
    m_pn = num_negatives * (1.0 / num_data)
    log_d1 = torch.log(positive / (positive + (m_pn + eps)))
    log_d0 = torch.log(m_pn / (negative + (m_pn + eps)))
    if weights is not None:
        log_d0 = log_d0 * weights
    return -(log_d1.sum() + log_d0.sum()) / positive.shape[0]


@full_precision
def crd_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor, num_data: int,
             eps: float = 1e-7) -> torch.Tensor:
    """CRD's contrastive criterion (the official ``ContrastLoss``, Eq. 18) for both anchors, summed.

    Args:
        student_scores: (B, 1 + K) normalised scores ``P`` of the student anchor against the teacher's
            memory: column 0 the positive, columns 1..K the negatives (differentiated).
        teacher_scores: (B, 1 + K) the same for the teacher anchor against the student's memory.
        num_data: N, the training-set size (the noise distribution is uniform, ``P_n = 1 / N``).
        eps: the official 1e-7.

    Returns a 0-dim tensor (unweighted; the official weight is 0.8). Raises ValueError for score
    matrices of other shapes or an empty batch. Computed in float32 or wider.
    """
    check_features(student_scores, teacher_scores, name="crd_loss", inputs=("student_scores", "teacher_scores"))
    if (student_scores.ndim != 2 or student_scores.shape != teacher_scores.shape or student_scores.shape[1] < 2
            or isinstance(num_data, bool) or not isinstance(num_data, int) or num_data < 1):
        raise ValueError(f"crd_loss: needs two (B, 1 + K) score matrices of one shape (K >= 1) and num_data >= 1, got "
                         f"{tuple(student_scores.shape)}, {tuple(teacher_scores.shape)} and {num_data!r}")
    k = student_scores.shape[1] - 1
    return (_nce(student_scores[:, 0], student_scores[:, 1:], None, k, num_data, eps)
            + _nce(teacher_scores[:, 0], teacher_scores[:, 1:], None, k, num_data, eps))


class Embed(nn.Module):
    """``normalize(Linear(D, feat_dim)(x))``: the official ``Embed`` (``x / ||x||_2``, no epsilon);
    ``D feat_dim + feat_dim`` parameters."""

    def __init__(self, dim_in: int, dim_out: int = 128) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x.reshape(x.shape[0], -1))
        return x / x.pow(2).sum(1, keepdim=True).sqrt()


class NegativeSampler(nn.Module):
    """Draws K negative rows per sample from the other classes' samples (see the module docstring).

    Built from the training labels (``train_targets``, (N,) int64): the rows sorted by class and each
    class's offset and size are non-persistent buffers (derived from the dataset, not saved). A draw
    is a function of (key, epoch, sample row) only (`figkd.losses.random`). Without replacement: the K
    other-class rows with the smallest of N random 64-bit keys (a uniform K-subset); with replacement:
    K uniform draws among the sample's ``N - count(class)`` other-class rows.
    """

    def __init__(self, train_targets: torch.Tensor, num_negatives: int, key: int) -> None:
        super().__init__()
        targets = torch.as_tensor(train_targets, dtype=torch.int64, device="cpu")
        if targets.ndim != 1 or len(targets) == 0 or bool((targets < 0).any()):
            raise ValueError("CRD needs the training labels as a non-empty (N,) tensor of class indices >= 0")
        count = torch.bincount(targets)
        present = count > 0
        if int(present.sum()) < 2:
            raise ValueError("CRD draws its negatives from the other classes' samples: the training set has one class")
        n = len(targets)
        others = n - count
        self.num_negatives, self.num_data, self.key = int(num_negatives), n, int(key)
        replace = others < self.num_negatives
        self.with_replacement = bool((replace & present).any())
        self.without_replacement = bool((~replace & present).any())
        order = torch.sort(targets, stable=True).indices
        start = torch.cumsum(count, 0) - count
        device = torch.empty(0).device  # the device the term is being built on (meta in shape-only builds)
        for name, value in (("classes", targets), ("order", order), ("start", start), ("count", count),
                            ("others", others), ("replace", replace)):
            self.register_buffer(name, value.to(device), persistent=False)

    def forward(self, index: torch.Tensor, epoch: torch.Tensor) -> torch.Tensor:
        """(B, K) int64 rows of the training set: the negatives of the samples ``index`` at ``epoch``."""
        c = self.classes[index]
        k = self.num_negatives
        drawn = []
        if self.with_replacement:
            bits = random_bits(self.key, epoch, index, k)
            r = torch.remainder(bits, self.others[c][:, None])  # uniform in [0, N - count(class))
            r = r + (r >= self.start[c][:, None]) * self.count[c][:, None]  # skip the sample's own class
            drawn.append(self.order[r])
        if self.without_replacement:
            keys = random_bits(self.key, epoch, index, self.num_data)
            keys = keys.masked_fill(self.classes[None, :] == c[:, None], _INT64_MAX)
            drawn.append(torch.topk(keys, k, dim=1, largest=False, sorted=False).indices)
        if len(drawn) == 1:
            return drawn[0]
        return torch.where(self.replace[c][:, None], drawn[0], drawn[1])


@register_term("crd", inputs=("student_pooled", "teacher_pooled", "index", "epoch"), batch_coupled=True,
               function=crd_loss,
               source="Tian et al. ICLR 2020; HobbitLong/RepDistiller crd/criterion.py, crd/memory.py, "
                      "dataset/cifar100.py (defaults: train_student.py; weight 0.8: README, mdistiller CFG.CRD)",
               help="contrastive representation distillation: NCE of the embeddings against a memory bank of "
                    "negatives",
               presets={
                   # CRD: RepDistiller train_student.py (--feat_dim 128, --nce_k 16384, --nce_t 0.07, --nce_m 0.5,
                   # --mode exact: the term's defaults) and its README (-r 1 -a 0 -b 0.8: CE 1, CRD 0.8); mdistiller
                   # CFG.CRD has the same values.
                   "crd": [{"term": "ce"}, {"term": "crd", "weight": 0.8}],
               })
class CRD(nn.Module):
    """The CRD term: embedding heads ``embed_student``, ``embed_teacher`` (trained), memory banks
    ``memory_student``, ``memory_teacher`` (N x ``feat_dim`` buffers, updated in place at every step,
    checkpointed and resumed), the normalisation constants ``normalizers`` (buffer; -1 until the first
    step) and the negative sampler. Built from the context's pooled widths and training labels.

    ``batch_coupled``: under DDP every rank sees the whole global batch, so every rank updates its banks
    with the same rows and the banks stay identical across ranks.
    """

    @classmethod
    def from_context(cls, context, feat_dim: int = 128, num_negatives: int = 16384, temperature: float = 0.07,
                     momentum: float = 0.5) -> CRD:
        student, teacher, targets = context.require("crd", "student", "teacher", "train_targets")
        return cls(student.pooled, teacher.pooled, targets, feat_dim, num_negatives, temperature, momentum,
                   seed=context.seed)

    def __init__(self, student_dim: int, teacher_dim: int, train_targets: torch.Tensor, feat_dim: int = 128,
                 num_negatives: int = 16384, temperature: float = 0.07, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("feat_dim", feat_dim), ("num_negatives", num_negatives)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CRD: {name} must be a positive integer, got {value!r}")
        self.temperature = check_positive(temperature, "CRD: temperature")
        self.momentum = check_positive(momentum, "CRD: momentum", allow_zero=True)
        if self.momentum >= 1.0:
            raise ValueError(f"CRD: momentum must be in [0, 1), got {momentum!r}")
        self.num_negatives = num_negatives
        # Construction order of the official CRDLoss: the two heads, then the two banks.
        self.embed_student = Embed(student_dim, feat_dim)
        self.embed_teacher = Embed(teacher_dim, feat_dim)
        self.sampler = NegativeSampler(train_targets, num_negatives, make_key(seed, "crd/negatives"))
        n = self.sampler.num_data
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_student", torch.rand(n, feat_dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("memory_teacher", torch.rand(n, feat_dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("normalizers", torch.full((2,), -1.0))

    @full_precision
    def forward(self, student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, index: torch.Tensor,
                epoch: torch.Tensor) -> torch.Tensor:
        check_batch("CRD", student_pooled=student_pooled, teacher_pooled=teacher_pooled)
        return self.contrast(student_pooled, teacher_pooled, index, self.sampler(index, epoch))

    def contrast(self, student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, index: torch.Tensor,
                 negatives: torch.Tensor) -> torch.Tensor:
        """Steps 1 and 3-5 of the module docstring with given negatives (B, K) (rows of the training set);
        returns the unweighted loss and updates the banks and, at the first step, the normalisers."""
        v_s = self.embed_student(student_pooled)
        v_t = self.embed_teacher(teacher_pooled.detach())
        n = self.memory_student.shape[0]
        with torch.no_grad():  # the scores read the banks as they were before this step's update
            bank_s, bank_t = self.memory_student.clone(), self.memory_teacher.clone()
        e_s = torch.exp(v_s @ bank_t.t() / self.temperature)  # (B, N): student anchor, teacher's bank
        e_t = torch.exp(v_t @ bank_s.t() / self.temperature)  # (B, N): teacher anchor, student's bank
        counts = torch.zeros_like(e_s).scatter_add_(1, negatives, torch.ones_like(negatives, dtype=e_s.dtype))
        pos_s = e_s.gather(1, index[:, None]).squeeze(1)
        pos_t = e_t.gather(1, index[:, None]).squeeze(1)
        draws = pos_s.shape[0] * (self.num_negatives + 1)
        with torch.no_grad():
            first = torch.stack([(pos_s.sum() + (counts * e_s).sum()) / draws * n,
                                 (pos_t.sum() + (counts * e_t).sum()) / draws * n]).to(self.normalizers.dtype)
            self.normalizers.copy_(torch.where(self.normalizers < 0, first, self.normalizers))
        z_s, z_t = self.normalizers[0].to(e_s.dtype), self.normalizers[1].to(e_s.dtype)
        loss = (_nce(pos_s / z_s, e_s / z_s, counts, self.num_negatives, n, 1e-7)
                + _nce(pos_t / z_t, e_t / z_t, counts, self.num_negatives, n, 1e-7))
        with torch.no_grad():
            self._update(self.memory_student, index, v_s)
            self._update(self.memory_teacher, index, v_t)
        return loss

    def _update(self, bank: torch.Tensor, index: torch.Tensor, v: torch.Tensor) -> None:
        rows = bank.index_select(0, index) * self.momentum + v.to(bank.dtype) * (1.0 - self.momentum)
        bank.index_copy_(0, index, rows / rows.pow(2).sum(1, keepdim=True).sqrt())

    def extra_repr(self) -> str:
        return (f"num_data={self.sampler.num_data}, num_negatives={self.num_negatives}, "
                f"temperature={self.temperature}, momentum={self.momentum}")
