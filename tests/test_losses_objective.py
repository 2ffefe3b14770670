"""Objectives: presets equal their hand-composed sums, warm-up ramps, inputs, errors, no host sync."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from figkd.losses import (
    build_objective,
    dist_loss,
    dkd_loss,
    figkd_loss,
    kd_loss,
    list_presets,
    list_terms,
    mlkd_loss,
    preset_spec,
    term_defaults,
    term_spec,
)

STRONG = {"student_logits_strong", "teacher_logits_strong"}


def _logit_presets():
    """The presets whose terms read logits, labels and the epoch only (the feature presets - features,
    embeddings, class activation maps, sample indices - need a build context and model outputs)."""
    logit_inputs = {"student_logits", "teacher_logits", "student_logits_strong", "teacher_logits_strong", "target",
                    "epoch"}
    return [p for p in list_presets()
            if all(n in logit_inputs for t in preset_spec(p) for n in term_spec(t["term"]).inputs)]


def _inputs(c=100, b=64):
    torch.manual_seed(0)
    ls = torch.randn(b, c, dtype=torch.float64) * 2
    lt = torch.randn(b, c, dtype=torch.float64) * 4
    y = torch.randint(0, c, (b,))
    ls2 = ls + torch.randn(b, c, dtype=torch.float64)
    lt2 = lt + torch.randn(b, c, dtype=torch.float64) * 2
    return ls, lt, y, ls2, lt2


def _others(b, like):
    """The inputs beside logits, target and epoch: sample indices (TeKAP's draws), a peer's logits (DML)."""
    return {"index": torch.arange(b, device=like.device), "peer_logits": [like * 0.5]}


def _run(obj, epoch=240):
    ls, lt, y, ls2, lt2 = _inputs()
    extra = {"student_logits_strong": ls2, "teacher_logits_strong": lt2} if obj.needs.strong() else {}
    return obj(student_logits=ls, teacher_logits=lt, target=y, epoch=epoch, **extra, **_others(64, lt))


def _close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)


def test_registry_lists():
    assert {"ce", "dist", "dkd", "figkd", "kd", "mlkd", "fitnet", "at"} <= set(list_terms())
    assert list_presets()[:9] == ["vanilla", "kd", "dkd", "mlkd", "dist", "figkd", "mlkd+figkd", "fitnet", "at"]
    assert term_defaults("dkd") == {"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "standardize": False}
    assert term_defaults("figkd")["bands"] == "high"
    spec = preset_spec("figkd")
    spec[1]["weight"] = 99.0  # a copy: the preset is unchanged
    assert preset_spec("figkd")[1]["weight"] == 2.0


def test_presets_equal_hand_composed_sums():
    ls, lt, y, ls2, lt2 = _inputs()
    ce = F.cross_entropy(ls, y)
    parts = mlkd_loss(ls, lt, ls2, lt2, y)
    mlkd = parts["ce"] + parts["kd"] + parts["cc"] + parts["bc"]
    fig = figkd_loss(ls, lt)
    expected = {
        "vanilla": {"ce": ce},
        "kd": {"ce": 0.1 * ce, "kd": 0.9 * kd_loss(ls, lt, 4.0)},
        "dkd": {"ce": ce, "dkd": dkd_loss(ls, lt, y, 1.0, 8.0, 4.0)},
        "mlkd": {"mlkd": mlkd, **{f"mlkd/{k}": v for k, v in parts.items()}},
        "dist": {"ce": ce, "dist": 2.0 * dist_loss(ls, lt, 1.0, 1.0, 4.0)},
        "figkd": {"ce": ce, "figkd": 2.0 * fig},
        "mlkd+figkd": {"mlkd": mlkd, **{f"mlkd/{k}": v for k, v in parts.items()}, "figkd": 2.0 * fig},
    }
    for name, terms in expected.items():
        out = _run(build_objective(name), epoch=240)
        assert set(out) == {*terms, "total"}, name
        for k, v in terms.items():
            assert _close(out[k], v), (name, k)
        assert _close(out["total"], sum(v for k, v in terms.items() if "/" not in k)), name
    # the oracle for mdistiller's KD objective
    assert abs(float(_run(build_objective("kd"))["total"]) - 9.335780381288988) < 1e-9 * 9.34


def test_dkd_warmup_ramp_python_and_tensor_epoch():
    ls, lt, y, *_ = _inputs()
    full = dkd_loss(ls, lt, y)
    obj = build_objective("dkd")
    assert obj.needs.epoch
    ramp = [(0, 0.0), (1, 1 / 20), (5, 0.25), (19, 0.95), (20, 1.0), (240, 1.0), (7.5, 7.5 / 20)]
    for epoch, factor in ramp:
        out = _run(obj, epoch=epoch)
        assert _close(out["dkd"], factor * full), epoch
        assert _close(_run(obj, epoch=np.float64(epoch))["dkd"], factor * full)
        tensor_out = _run(obj, epoch=torch.tensor(epoch, dtype=torch.float32))
        assert math.isclose(float(tensor_out["dkd"]), factor * float(full), rel_tol=1e-7), epoch
        assert _close(out["total"], out["ce"] + out["dkd"])


def test_warmup_on_any_term_and_epoch_only_needed_with_warmup():
    ls, lt, y, *_ = _inputs()
    obj = build_objective([{"term": "ce"}, {"term": "figkd", "weight": 2.0, "warmup": 10}])
    out = obj(student_logits=ls, teacher_logits=lt, target=y, epoch=torch.tensor(4))
    assert _close(out["figkd"], 0.4 * 2.0 * figkd_loss(ls, lt))
    # no warm-up: epoch may be omitted
    out = build_objective("figkd")(student_logits=ls, teacher_logits=lt, target=y)
    assert _close(out["total"], F.cross_entropy(ls, y) + 2 * figkd_loss(ls, lt))
    with pytest.raises(TypeError, match="epoch"):
        obj(student_logits=ls, teacher_logits=lt, target=y)
    with pytest.raises(TypeError, match="epoch"):
        obj(student_logits=ls, teacher_logits=lt, target=y, epoch="3")


def test_warmup_start_delays_the_ramp_as_a_trainer_counting_epochs_from_0():
    """dvlab-research/ReviewKD CIFAR-100/train.py: ``min(1, epoch/args.kd_warm_up)`` with ``epoch`` from 0, so its
    first epoch has weight 0; figkd counts epochs from 1: ``warmup_start: 1`` gives the same factors."""
    ls, lt, y, *_ = _inputs()
    entry = {"term": "kd", "warmup": 20, "warmup_start": 1}
    obj = build_objective([{"term": "ce"}, entry])
    full = kd_loss(ls, lt)
    for epoch, official_epoch in ((1, 0), (2, 1), (11, 10), (21, 20), (240, 239)):
        factor = min(1.0, official_epoch / 20)
        assert _close(obj(student_logits=ls, teacher_logits=lt, target=y, epoch=epoch)["kd"], factor * full), epoch
        tensor = obj(student_logits=ls, teacher_logits=lt, target=y, epoch=torch.tensor(float(epoch)))["kd"]
        assert math.isclose(float(tensor), factor * float(full), rel_tol=1e-6, abs_tol=1e-12), epoch
    assert obj.spec[1]["warmup_start"] == 1 and "warmup_start" not in build_objective("dkd").spec[1]
    with pytest.raises(ValueError, match="warmup_start"):
        build_objective([{"term": "kd", "warmup": 20, "warmup_start": -1}])


def test_needs_are_the_union_of_the_declared_inputs():
    logits = {"student_logits", "teacher_logits"}
    assert build_objective("mlkd").needs.inputs == {*logits, *STRONG, "target"}
    assert build_objective("mlkd+figkd").needs.inputs == {*logits, *STRONG, "target"}
    assert build_objective("kd").needs.inputs == {*logits, "target"}  # ce + kd
    assert build_objective("dkd").needs.inputs == {*logits, "target", "epoch"}  # the warm-up reads the epoch
    assert build_objective([{"term": "figkd"}]).needs.inputs == logits
    for name in ("vanilla", "kd", "dkd", "dist", "figkd"):
        assert not build_objective(name).needs.strong(), name
    assert build_objective("mlkd").needs.strong() and build_objective("mlkd").needs.strong("student")
    assert not build_objective("vanilla").needs.teacher
    assert not build_objective([{"term": "ce"}, {"term": "ce", "weight": 0.5}]).needs.teacher
    for name in ("kd", "dkd", "mlkd", "dist", "figkd", "mlkd+figkd"):
        assert build_objective(name).needs.teacher, name
    assert not build_objective([{"term": "figkd"}]).needs.target
    assert build_objective("dkd").needs.target
    assert not build_objective("figkd").needs.features("student")
    # vanilla runs without a teacher; a teacher-free term list runs without a target when none is needed
    ls, lt, y, *_ = _inputs()
    out = build_objective("vanilla")(student_logits=ls, target=y)
    assert _close(out["total"], F.cross_entropy(ls, y))
    out = build_objective([{"term": "kd"}])(student_logits=ls, teacher_logits=lt)
    assert _close(out["kd"], kd_loss(ls, lt))


def test_missing_and_unexpected_inputs():
    ls, lt, y, ls2, lt2 = _inputs()
    with pytest.raises(TypeError, match="student_logits_strong"):
        build_objective("mlkd")(student_logits=ls, teacher_logits=lt, target=y)
    with pytest.raises(TypeError, match="teacher_logits"):
        build_objective("figkd")(student_logits=ls, target=y)
    with pytest.raises(TypeError, match="target"):
        build_objective("figkd")(student_logits=ls, teacher_logits=lt)
    with pytest.raises(TypeError, match="unknown inputs.*'logits'.*vocabulary"):
        build_objective("figkd")(logits=ls, teacher_logits=lt, target=y)
    # a vocabulary input no term needs is ignored (a training loop may pass everything it has)
    out = build_objective("figkd")(student_logits=ls, teacher_logits=lt, target=y, student_logits_strong=ls2)
    assert set(out) == {"ce", "figkd", "total"}


def test_term_list_keys_names_and_options():
    ls, lt, y, *_ = _inputs()
    obj = build_objective([
        {"term": "ce", "weight": 1.0},
        {"term": "figkd", "weight": 2.0, "bands": "high"},
        {"term": "figkd", "weight": 0.5, "bands": "low"},
    ])
    out = obj(student_logits=ls, teacher_logits=lt, target=y)
    assert list(out) == ["ce", "figkd_1", "figkd_2", "total"]
    assert _close(out["figkd_2"], 0.5 * figkd_loss(ls, lt, bands="low"))
    named = build_objective([{"term": "figkd", "name": "detail"},
                             {"term": "kd", "name": "soft", "temperature": 2}])
    out = named(student_logits=ls, teacher_logits=lt)
    assert list(out) == ["detail", "soft", "total"]
    assert _close(out["soft"], kd_loss(ls, lt, 2.0))
    # the resolved spec records every option (for run directories)
    spec = named.spec
    assert spec[0]["term"] == "figkd" and spec[0]["wavelet"] == "haar" and spec[0]["weight"] == 1.0
    assert spec[1]["temperature"] == 2


def test_errors_name_the_valid_choices():
    assert {"vanilla", "kd", "dkd", "mlkd", "dist", "figkd", "mlkd+figkd", "fitnet", "crd"} <= set(list_presets())
    with pytest.raises(ValueError, match="valid presets: " + re.escape(", ".join(list_presets()))):
        build_objective("nope")
    assert {"at", "ce", "dist", "dkd", "figkd", "fitnet", "kd", "mlkd", "crd", "reviewkd"} <= set(list_terms())
    with pytest.raises(ValueError, match="valid terms: " + re.escape(", ".join(list_terms()))):
        build_objective([{"term": "nope"}])
    with pytest.raises(ValueError, match="'fitnet' is built from the student and teacher of its build context"):
        build_objective("fitnet", num_classes=100)  # a connector needs the feature shapes
    with pytest.raises(ValueError, match="unknown option.*'tau'.*temperature"):
        build_objective([{"term": "kd", "tau": 4}])
    with pytest.raises(ValueError, match="'high', 'low', 'both'"):
        build_objective([{"term": "figkd", "bands": "mid"}])
    with pytest.raises(ValueError, match="temperature"):
        build_objective([{"term": "dkd", "temperature": 0}])
    with pytest.raises(ValueError, match="warmup"):
        build_objective([{"term": "dkd", "warmup": -1}])
    with pytest.raises(ValueError, match="warmup"):
        build_objective([{"term": "dkd", "warmup": 2.5}])
    with pytest.raises(ValueError, match="weight"):
        build_objective([{"term": "ce", "weight": "one"}])
    with pytest.raises(ValueError, match="no 'term'"):
        build_objective([{"weight": 1.0}])
    with pytest.raises(ValueError, match="unique"):
        build_objective([{"term": "ce", "name": "x"}, {"term": "kd", "name": "x"}])
    with pytest.raises(ValueError, match="unique"):
        build_objective([{"term": "ce", "name": "total"}])
    with pytest.raises(ValueError, match="without '/'"):
        build_objective([{"term": "ce", "name": "a/b"}])
    with pytest.raises(ValueError, match="no terms"):
        build_objective([])
    with pytest.raises(ValueError, match="preset name"):
        build_objective({"term": "ce"})
    with pytest.raises(ValueError, match="too high"):
        build_objective([{"term": "figkd", "level": 4}], num_classes=100)
    obj = build_objective("figkd", num_classes=100)
    ls, lt, y, *_ = _inputs(c=200, b=4)
    with pytest.raises(ValueError, match="num_classes=100"):
        obj(student_logits=ls, teacher_logits=lt, target=y)


def test_one_weight_and_warmup_rule_for_configs_and_code():
    """A config file and build_objective refuse the same weights and warm-ups, with the same words."""
    from figkd.config import ConfigError, RunConfig

    for entry, what in (({"term": "kd", "weight": -0.5}, "weight must be a number >= 0, got -0.5"),
                        ({"term": "kd", "weight": float("inf")}, "weight must be a number >= 0, got inf"),
                        ({"term": "dkd", "warmup": -1}, "warmup (epochs) must be an integer >= 0, got -1"),
                        ({"term": "dkd", "warmup": 2.5}, "warmup (epochs) must be an integer >= 0, got 2.5")):
        with pytest.raises(ConfigError) as config:
            RunConfig(objective=[entry])
        with pytest.raises(ValueError) as code:
            build_objective([entry])
        assert str(config.value) == f"objective term #0 ({entry['term']}): {what}"
        assert str(code.value) == f"objective term {entry['term']!r}: {what}"
    # zero is a weight (a term reported but not trained on); YAML's 1e-3 (read as a string) is a number in both
    entries = [{"term": "ce", "weight": 0}, {"term": "kd", "weight": "1e-3"}]
    assert RunConfig(objective=entries).objective == entries
    assert build_objective(entries).weights == (0.0, 0.001)


def test_no_host_sync_meta_tensors():
    # Meta tensors have no data: any .item(), Python branch on a value or host copy would raise.
    # Every preset, and the filter-bank (non-Haar) and KL paths of FiGKD, run forward and backward
    # on them with a tensor epoch.
    extra_specs = [[{"term": "figkd", "wavelet": "db2", "bands": "both", "mode": "symmetric"},
                    {"term": "figkd", "criterion": "kl", "level": 2, "noise_std": 0.1, "warmup": 3},
                    {"term": "figkd", "dims": 1, "level": 3, "criterion": "l1"}]]
    for name in [*_logit_presets(), *extra_specs]:
        obj = build_objective(name)
        s = torch.empty(64, 100, device="meta", requires_grad=True)
        t = torch.empty(64, 100, device="meta")
        y = torch.empty(64, dtype=torch.long, device="meta")
        extra = {k: torch.empty(64, 100, device="meta") for k in STRONG if obj.needs.strong()}
        epoch = torch.tensor(3.0, device="meta")
        out = obj(student_logits=s, teacher_logits=t, target=y, epoch=epoch, **extra, **_others(64, t))
        assert out["total"].shape == () and out["total"].device.type == "meta"
        out["total"].backward()


def test_bf16_autocast_objective_stays_float32():
    ls, lt, y, ls2, lt2 = (x.float() if x.is_floating_point() else x for x in _inputs())
    for name in _logit_presets():
        obj = build_objective(name)
        extra = {"student_logits_strong": ls2, "teacher_logits_strong": lt2} if obj.needs.strong() else {}
        extra.update(_others(64, lt))
        ref = obj(student_logits=ls, teacher_logits=lt, target=y, epoch=5, **extra)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = obj(student_logits=ls, teacher_logits=lt, target=y, epoch=5, **extra)
        for k in ref:
            assert out[k].dtype == torch.float32, (name, k)
            assert torch.equal(out[k], ref[k]), (name, k)


@pytest.mark.slow
def test_figkd_objective_compiles_fullgraph():
    obj = build_objective([{"term": "ce"}, {"term": "figkd", "weight": 2.0, "warmup": 5}], num_classes=100)
    ls, lt, y, *_ = (x.float() if x.is_floating_point() else x for x in _inputs())

    def step(s, t, target, epoch):
        return obj(student_logits=s, teacher_logits=t, target=target, epoch=epoch)["total"]

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    s = ls.clone().requires_grad_()
    out = compiled(s, lt, y, torch.tensor(2.0))
    out.backward()
    assert torch.allclose(out, step(ls, lt, y, torch.tensor(2.0)), rtol=1e-6)
