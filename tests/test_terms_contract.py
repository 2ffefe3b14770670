"""The contract every registered loss term keeps, checked for each one (today's and every later one).

For each name in ``list_terms()``, built with its default options through the engine's own path
(`build_learner`: feature shapes probed, the teacher in the context) and fed exactly the inputs it
declares:

- its declared inputs are vocabulary names, and its options have defaults (registration checks);
- the whole training step runs on meta tensors (no data: any host synchronisation would raise); a term
  that reads the other peers' logits (DML) runs with two peers, in the engine's two-phase step;
- the step is captured and replayed by the recording backend (`figkd.engine.graph`) with every term as a
  member of one run (so, with a peer term among them, in the two-phase step): every replay
  issues the captured operations with the same arguments, reads nothing on the host, creates no tensor
  from host data, and moves no persistent tensor (parameters, buffers, optimizer and guard state);
- its value is finite and, where it has parameters, they receive gradients.
"""

import numpy as np
import pytest
import torch

from figkd.config import RunConfig
from figkd.data import build_loader
from figkd.data.base import ArrayDataset
from figkd.engine.distributed import DistInfo
from figkd.engine.graph import RecordingBackend
from figkd.engine.learner import build_learner
from figkd.engine.member import build_member
from figkd.engine.step import TrainStep
from figkd.engine.teacher import TeacherForward
from figkd.engine.trainer import Trainer
from figkd.losses import VOCABULARY, Needs, list_terms, term_spec
from figkd.models import build_model
from fixtures_engine import meta_member

CLASSES, BATCH, STEPS = 10, 4, 6
META, CPU = torch.device("meta"), torch.device("cpu")


def _learner(name, teacher, device_ctx=None, train_targets=None):
    if train_targets is None:  # the labels of the training set, by row (CRD draws negatives from other classes)
        train_targets = [i % CLASSES for i in range(BATCH * STEPS)]
    with device_ctx or torch.device("cpu"):
        student = build_model("resnet8", CLASSES)
        return build_learner(student, [{"term": name}], teacher=teacher, num_classes=CLASSES, input_size=(32, 32),
                             train_targets=train_targets)


@pytest.mark.parametrize("name", list_terms())
def test_registration_declares_vocabulary_inputs_and_defaults(name):
    spec = term_spec(name)
    assert spec.inputs and set(spec.inputs) <= set(VOCABULARY)
    assert spec.source, f"term {name!r} names no source"


@pytest.mark.parametrize("name", list_terms())
def test_no_option_is_named_like_an_objective_entry_key(name):
    # An entry's term, weight, warmup and name are the objective's (figkd.losses.objective): a term option of
    # one of these names could never be set from a term list (EKD's Dirichlet warm-up was once named warmup,
    # so its configs ramped the whole term instead, issue 22).
    assert not set(term_spec(name).defaults) & {"term", "weight", "warmup", "name"}


@pytest.mark.parametrize("name", list_terms())
def test_step_of_each_term_runs_on_meta_tensors(name):
    cfg = RunConfig(device="cpu", tensorboard=False, progress="off")
    with META:
        teacher = build_model("resnet8", CLASSES).eval()
    members = []
    for _ in range(2 if term_spec(name).inputs.count("peer_logits") else 1):  # a peer term: two peers
        learner = _learner(name, teacher, META)
        members.append(meta_member(name, learner, cfg, META))
    needs = Needs.of(*(m.learner.needs.inputs for m in members))
    step = TrainStep(members, TeacherForward(teacher, needs) if learner.needs.teacher else None, device=META,
                     amp_dtype=None, channels_last=False)
    images = torch.empty(BATCH, 3, 32, 32, device=META)
    step.begin_epoch(1, steps=STEPS)
    step(images, torch.zeros(BATCH, dtype=torch.long, device=META), strong=images if learner.needs.strong() else None,
         index=torch.arange(BATCH, device=META) if learner.needs.index else None)
    assert step.accs[0].names[-1] == "total"


def test_every_term_is_captured_and_replayed_with_the_inputs_it_declares(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(BATCH * STEPS, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, BATCH * STEPS).tolist()
    split = ArrayDataset("digits", None, True, images, labels, [str(i) for i in range(CLASSES)])
    cfg = RunConfig(dataset="digits", batch_size=BATCH, device="cpu", epochs=1, tensorboard=False, progress="off")
    torch.manual_seed(0)
    teacher = build_model("resnet8", CLASSES)
    members = []
    for name in list_terms():
        torch.manual_seed(1)
        learner = _learner(name, teacher, train_targets=labels)
        members.append(build_member(name, "resnet8", name, learner, tmp_path / name, cfg, device=CPU,
                                    info=DistInfo(), teacher=teacher))
    strong = any(m.learner.needs.strong() for m in members)
    train = build_loader("digits", None, True, BATCH, device="cpu", strong_view=strong, dataset=split)
    backend = RecordingBackend()
    trainer = Trainer(cfg, members, train, None, teacher=teacher, device=CPU, info=DistInfo(),
                      log=lambda *a, **k: None, graph_backend=backend)
    backend.guard_tensors = lambda: trainer.persistent
    initial = {m.name: [p.detach().clone() for p in m.learner.objective.parameters()] for m in members}
    [results] = [trainer.train_epoch(1)]
    assert trainer.graph.captured and backend.replays == STEPS - 3  # 3 eager warm-up steps, then replays
    for m, r in zip(members, results, strict=True):
        assert np.isfinite(r["train/loss/total"]), m.name
        for before, p in zip(initial[m.name], m.learner.objective.parameters(), strict=True):
            assert not torch.equal(before, p), f"{m.name}: a parameter of its objective did not train"
