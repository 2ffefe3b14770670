"""The input vocabulary: the closed set of names a loss term may ask for, and what follows from it.

A term declares the inputs it needs by name (`figkd.losses.register_term`); the engine builds, once
at set-up, the union over the terms of a run (:class:`Needs`) and derives from it which forwards
return stage features, whether the loader makes the strong view, and what the teacher keeps. A name
outside this table is an error at registration.

=========================  ============================================  =================================
name                       value                                         provided by
=========================  ============================================  =================================
``student_logits``         (B, C) floating                               the student's forward
``teacher_logits``         (B, C) floating, detached                     the teacher's forward (no_grad)
``student_logits_strong``  (B, C) logits of the strongly augmented view  the student, second forward
``teacher_logits_strong``  (B, C) detached                               the teacher, second forward
``student_feats``          list of (B, C_i, H_i, W_i), stem + stages     ``model(x, return_features=True)``
``teacher_feats``          the teacher's, detached                       idem
``student_preact_feats``   list like ``student_feats``, before the       idem (OFD, ReviewKD)
                           last ReLU of each stage
``teacher_preact_feats``   the teacher's, detached                       idem
``student_pooled``         (B, D) penultimate embedding                  idem (CRD, RKD, PKT)
``teacher_pooled``         (B, D_t) detached                             idem
``student_prepool``        (B, D, H, W) the map the global pooling       idem (DiffKD)
                           turns into ``student_pooled``
``teacher_prepool``        the teacher's, detached                       idem
``student_cams``           (B, C, H, W) class activation maps: the       the student's forward and its
                           classifier's weights (no bias) at each        classifier (CAT-KD)
                           position of ``student_prepool``
``teacher_cams``           the teacher's, detached                       idem
``target``                 (B,) int64 class indices                      the loader
``index``                  (B,) int64 index of each sample in the        the loader (CRD's memory bank)
                           training set
``epoch``                  0-dim float32 tensor, 1-based epoch           the engine (warm-ups)
``peer_logits``            list of (B, C) logits of the *other* peers    the engine's two-phase step
                           of a DML run, detached                        (every peer's forward first)
=========================  ============================================  =================================

The feature structure (what ``feats``, ``preact_feats`` and ``pooled_feat`` hold per model family)
is documented in :mod:`figkd.models.registry`. Every name but ``epoch`` has the batch as its first
dimension (per sample): under DDP, terms that mix samples (``batch_coupled``) receive those inputs
gathered over every rank.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: name -> one-line description (shape, dtype); the docstring's table in short.
VOCABULARY: dict[str, str] = {
    "student_logits": "(B, C) student logits",
    "teacher_logits": "(B, C) teacher logits, detached",
    "student_logits_strong": "(B, C) student logits of the strongly augmented view (MLKD)",
    "teacher_logits_strong": "(B, C) teacher logits of the strongly augmented view, detached",
    "student_feats": "list of (B, C_i, H_i, W_i) student stage outputs (stem first)",
    "teacher_feats": "list of (B, C_i, H_i, W_i) teacher stage outputs, detached",
    "student_preact_feats": "list of student stage outputs before their last ReLU",
    "teacher_preact_feats": "list of teacher stage outputs before their last ReLU, detached",
    "student_pooled": "(B, D) student penultimate embedding",
    "teacher_pooled": "(B, D_t) teacher penultimate embedding, detached",
    "student_prepool": "(B, D, H, W) student map before the global pooling",
    "teacher_prepool": "(B, D_t, H_t, W_t) teacher map before the global pooling, detached",
    "student_cams": "(B, C, H, W) student class activation maps (classifier weights at each position)",
    "teacher_cams": "(B, C, H_t, W_t) teacher class activation maps, detached",
    "target": "(B,) int64 class indices",
    "index": "(B,) int64 index of each sample in the training set",
    "epoch": "0-dim float32 tensor: the 1-based epoch (warm-ups)",
    "peer_logits": "list of (B, C) logits of the other peers of the run (DML), detached",
}

#: Inputs without a batch dimension (never gathered across ranks).
NOT_PER_SAMPLE = frozenset({"epoch"})

#: Feature names of each side, and the key of ``model(x, return_features=True)[1]`` holding each.
FEATURE_KEYS = {"feats": "feats", "preact_feats": "preact_feats", "pooled": "pooled_feat",
                "prepool": "prepool_feat"}
#: Inputs derived from the features and the model's classifier, computed only when declared.
DERIVED_KEYS = ("cams",)


def check_names(names: Iterable[str], what: str) -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is in the vocabulary (ValueError naming the valid ones)."""
    names = tuple(names)
    unknown = [n for n in names if n not in VOCABULARY]
    if unknown:
        raise ValueError(f"{what}: unknown input(s) {unknown}; the vocabulary is {', '.join(VOCABULARY)} "
                         "(figkd.losses.inputs)")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: an input is declared twice in {list(names)}")
    return names


@dataclass(frozen=True)
class Needs:
    """What a set of declared inputs asks of the engine (the union over a run's terms)."""

    inputs: frozenset[str]

    @classmethod
    def of(cls, *groups: Iterable[str]) -> Needs:
        return cls(frozenset().union(*(frozenset(g) for g in groups)))

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.inputs | other.inputs)

    @property
    def teacher(self) -> bool:
        """Some input comes from the teacher."""
        return any(n.startswith("teacher_") for n in self.inputs)

    def features(self, side: str) -> bool:
        """The ``side`` ("student" or "teacher") forward must return its stage features."""
        return any(f"{side}_{k}" in self.inputs for k in (*FEATURE_KEYS, *DERIVED_KEYS))

    def cams(self, side: str) -> bool:
        """The ``side``'s class activation maps are needed (`figkd.models.class_activation_maps`)."""
        return f"{side}_cams" in self.inputs

    def strong(self, side: str | None = None) -> bool:
        """The strong view is needed (by ``side``'s forward if given, else by anyone)."""
        if side is None:
            return any(n.endswith("_strong") for n in self.inputs)
        return f"{side}_logits_strong" in self.inputs

    @property
    def target(self) -> bool:
        return "target" in self.inputs

    @property
    def index(self) -> bool:
        return "index" in self.inputs

    @property
    def epoch(self) -> bool:
        return "epoch" in self.inputs

    @property
    def peers(self) -> bool:
        """A term reads the other peers' logits: the run's step is two-phase (every forward first)."""
        return "peer_logits" in self.inputs
