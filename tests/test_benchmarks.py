"""The benchmark scripts run end to end at tiny sizes on CPU and write their JSON (timings unchecked).

``benchmarks/throughput.py`` and ``benchmarks/profile_step.py`` run inside the dry run of
``gpu_first_contact.sh`` below (its steps throughput_graph, throughput_eager and profile), which the
tests of those scripts check.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(script, *args, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return (json.loads(out.read_text()) if out.exists() else None), result.stdout


def test_loss_overhead_benchmark(tmp_path):
    data, _ = _bench("loss_overhead.py", "--device", "cpu", "--classes", "100", "--repeats", "1", "--inner", "1",
                     "--warmup", "0", out=tmp_path / "l.json")
    methods = {r["method"] for r in data["results"]}
    assert {"kd", "dkd", "mlkd", "figkd_J1", "figkd_J2", "figkd_J3"} <= methods


def test_input_pipeline_benchmark(tmp_path):
    data, _ = _bench("input_pipeline.py", "--device", "cpu", "--n-small", "256", "--n-jpeg", "16",
                     "--jpeg-size", "64", "48", "--steps", "2", "--warmup", "1", "--repeats", "1", "--workers", "1",
                     "--batch-size", "8", out=tmp_path / "i.json")
    kinds = {r["kind"] for r in data["results"]}
    assert {"resident", "resident+strong", "jpeg"} <= kinds


def test_equivalence_benchmark(tmp_path):
    data, stdout = _bench("equivalence.py", "--device", "cpu", "--dataset", "digits_16", "--teacher", "resnet8",
                          "--teacher-epochs", "1",
                          "--epochs", "1", "--seeds", "0", "1", "--compare-steps", "3", out=tmp_path / "e.json")
    assert [(r["seed"], r["path"]) for r in data["runs"]] == [(0, "fp32"), (0, "fast"), (1, "fp32"), (1, "fast")]
    assert {r["amp"] for r in data["runs"]} == {"None", "torch.bfloat16"}
    for s in data["steps"]:
        assert len(s["fp32"]) == len(s["fast"]) == 3
        # Same weights, same first batch: the first loss differs by bf16 rounding only. bf16 keeps 8
        # significant bits (2^-8 relative per value); measured 0.0015-0.0025 (docs/performance.md).
        # 2^-6 leaves a 4x margin, and fails if the two paths saw different batches or weights.
        assert s["relative_difference"][0] < 2 ** -6
    assert data["summary"]["fp32"]["top1"] == [r["top1"] for r in data["runs"] if r["path"] == "fp32"]
    assert "difference of the means" in stdout


def test_gpu_suite_script_is_valid_and_names_existing_scripts():
    script = ROOT / "benchmarks" / "gpu_suite.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    named = set(re.findall(r"benchmarks/(\w+\.py)", script.read_text()))
    assert named == {"loss_overhead.py", "input_pipeline.py", "throughput.py", "equivalence.py", "profile_step.py",
                     "feature_overhead.py"}
    assert all((ROOT / "benchmarks" / name).is_file() for name in named)


def test_fashion_mnist_kd_benchmark(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_data import make_idx

    root, _ = make_idx(str(tmp_path / "data"), n_train=64, n_test=20)
    args = ("fashion_mnist_kd.py", "--root", root, "--teacher", "resnet8", "--teacher-epochs", "1", "--epochs", "1",
            "--batch-size", "16", "--train-images", "48", "--workdir", str(tmp_path / "runs"))
    # the teacher alone, then seed 1 in a process of its own, then both seeds (seed 1's runs reused)
    data, stdout = _bench(*args, "--seeds", "0", "--teacher-only", out=tmp_path / "t.json")
    assert data is None and stdout.startswith("teacher resnet8")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["data-48", "teacher"]
    _bench(*args, "--seeds", "1", out=tmp_path / "s1.json")
    seed1 = (tmp_path / "runs" / "figkd-s1" / "metrics.jsonl").stat().st_mtime_ns
    data, stdout = _bench(*args, "--seeds", "0", "1", out=tmp_path / "f.json")
    assert (tmp_path / "runs" / "figkd-s1" / "metrics.jsonl").stat().st_mtime_ns == seed1  # not trained again
    methods = ["vanilla", "kd", "dkd", "dist", "figkd", "figkd_kl", "figkd_ls", "figkd_mean_all"]
    assert [(r["method"], r["seed"]) for r in data["runs"]] == [(m, s) for s in (0, 1) for m in methods]
    assert set(data["summary"]) == set(methods) and len(data["summary"]["kd"]["top1"]) == 2
    fig = data["summary"]["figkd"]["loss_first_epoch"]
    assert set(fig) == {"ce", "figkd", "total"} and fig["figkd"] > 0
    spec = json.loads(json.dumps(__import__("yaml").safe_load(
        (tmp_path / "runs" / "figkd_kl-s0" / "config.yaml").read_text())))["objective"]
    assert spec[1]["criterion"] == "kl" and spec[1]["temperature"] == 4.0
    for method, option in (("figkd_ls", {"standardize": True}), ("figkd_mean_all", {"reduction": "mean_all"})):
        config = (tmp_path / "runs" / f"{method}-s0" / "config.yaml").read_text()
        spec = __import__("yaml").safe_load(config)["objective"]
        assert spec[1]["term"] == "figkd" and spec[1]["weight"] == 2.0 and option.items() <= spec[1].items()
    assert "loss terms" in stdout


def test_feature_overhead_benchmark(tmp_path):
    data, stdout = _bench("feature_overhead.py", "--device", "cpu", "--teacher", "resnet8", "--student", "resnet8",
                          "--classes", "10", "--train-size", "200", "--objectives", "kd", "vid", "crd", "cat_kd",
                          "--repeats", "1", "--inner", "1", "--step-inner", "1", "--warmup", "0",
                          out=tmp_path / "f.json")
    rows = {r["objective"]: r for r in data["results"]}  # cat_kd: the student's CAMs reach the objective alone
    assert list(rows) == ["kd", "vid", "crd", "cat_kd"]
    assert rows["kd"]["objective_vs_kd"] == rows["kd"]["step_vs_kd"] == 1.0
    # VID's regressors are convolutions (MAC > 0); KD's objective has none
    assert rows["vid"]["objective_mmac_per_sample"] > 0 == rows["kd"]["objective_mmac_per_sample"]
    assert rows["vid"]["objective_saved_mb"] > 0 and rows["kd"]["student_mmac_per_sample"] > 0
    assert rows["kd"]["objective_parameters"] == 0 and rows["vid"]["objective_parameters"] > 0
    assert rows["crd"]["objective_buffer_mb"] > 0  # the memory banks (200 x 128 x 2 floats here)
    assert all(r["objective_ms"] > 0 and r["step_ms"] > 0 for r in rows.values())
    assert "vs kd" in stdout


def test_figkd_scale_benchmark(tmp_path):
    data, stdout = _bench("figkd_scale.py", "--parts", "spike", "synthetic", "--classes", "4", "10", "--seeds", "0",
                          "--per-class", "10", "--teacher-epochs", "1", "--epochs", "1", out=tmp_path / "s.json")
    assert [r["classes"] for r in data["spike"]] == [4, 10]
    assert data["spike"][0]["default_spike_per_m2"] == pytest.approx(1.5)  # 2 x 2 grid: 2 x 3 bands x (1/2)^2
    [row] = [r for r in data["synthetic"] if r["classes"] == 10]
    assert set(row["seeds"][0]["runs"]) == {"ce_alone", "default", "mean_all", "kl"} and "digits" not in data


# ---- benchmarks/gpu_first_contact.sh: the whole script at tiny size on the CPU (issue 26) -----------------
FIRST_CONTACT_STEPS = ["environment", "smoke", "cuda_tests", "throughput_graph", "throughput_eager", "overhead",
                       "profile"]


def _first_contact(out, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_first_contact.sh"), str(out), "--tiny",
                             "--device", "cpu", *args], capture_output=True, text=True, env=env, timeout=600)
    return result, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def first_contact(tmp_path_factory):
    """One dry run of every step (resnet8 -> resnet8, a few steps, 32 training images); (result, summary, out)."""
    out = tmp_path_factory.mktemp("first_contact") / "out"
    result, summary = _first_contact(out)
    return result, summary, out


def test_first_contact_runs_every_step_or_says_why_not(first_contact):
    result, summary, _ = first_contact
    assert result.returncode == 0, result.stdout + result.stderr
    assert [s["name"] for s in summary["steps"]] == [p["name"] for p in summary["plan"]] == FIRST_CONTACT_STEPS
    assert {s["name"]: s["status"] for s in summary["steps"]} == dict.fromkeys(FIRST_CONTACT_STEPS, "ok")
    assert summary["finished"] and summary["dry_run"] and summary["environment"]["device"] == "cpu"
    # the captured smoke run needs CUDA: skipped on the CPU, with the reason
    [graph] = [r for r in summary["steps"][1]["runs"] if r["mode"] == "graph"]
    assert graph["status"] == "skipped" and "needs CUDA" in graph["reason"]
    assert "goal shared_speedup" in result.stdout.splitlines()[-2]  # the closing table ends the output


def test_first_contact_output_fits_what_the_gpu_machine_returns(first_contact):
    """At most 8 files, at most 2 folder levels, names of letters, digits, '.', '_' and '-'."""
    _, _, out = first_contact
    files = [p for p in out.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["log.txt", "overhead.json", "overhead.png", "profile_graph.json",
                                             "summary.json", "throughput_eager.json", "throughput_graph.json"]
    assert all(len(p.relative_to(out).parts) <= 3 and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)


def test_first_contact_smoke_records_losses_top1_and_capture(first_contact):
    _, summary, _ = first_contact
    runs = {r["mode"]: r for r in summary["steps"][1]["runs"]}
    assert list(runs) == ["graph", "bf16_cl", "fp32"]
    for mode in ("bf16_cl", "fp32"):
        run = runs[mode]
        assert run["status"] == "ok" and run["exit_status"] == 0 and run["captured"] is False
        assert run["why_not_captured"] == "cuda_graph is off in this mode"
        assert set(run["members"]) == {"resnet8-kd", "resnet8-figkd"}
        for name, member in run["members"].items():
            assert [e["epoch"] for e in member["epochs"]] == [1, 2]
            for epoch in member["epochs"]:
                assert set(epoch["losses"]) == {"ce", name.split("-")[1], "total"} and 0 <= epoch["test/top1"] <= 100


def test_first_contact_finds_the_cuda_only_tests(first_contact):
    _, summary, _ = first_contact
    step = summary["steps"][2]
    found = subprocess.run(["grep", "-rlE", r'mark\.skipif\(.*reason="needs CUDA"\)', str(ROOT / "tests")],
                           capture_output=True, text=True).stdout.split()
    assert {t.split("::")[0] for t in step["tests"]} == {f"tests/{Path(f).name}" for f in found} != set()
    assert step["counts"]["skipped"] == len(step["cases"]) >= len(step["tests"])
    assert {c["message"] for c in step["cases"]} == {"needs CUDA"}


def test_first_contact_throughput(first_contact):
    _, summary, out = first_contact
    graph, eager = summary["steps"][3], summary["steps"][4]
    assert [r["objectives"] for r in graph["results"]] == [["kd"], ["figkd"], ["dkd"]]
    # on the CPU the graph mode runs through the recording backend: captured after the warm-up steps
    assert all(r["cuda_graph"] for r in graph["results"] + graph["shared"])
    [shared] = graph["shared"]
    assert shared["objectives"] == ["kd", "figkd", "dkd"]
    assert shared["separate_ms_per_step"] == pytest.approx(sum(r["ms_per_step"] for r in graph["results"]))
    assert [(r["mode"], r["objectives"]) for r in eager["results"]] == [
        ("bf16_cl", ["kd"]), ("bf16_cl", ["figkd"]), ("fp32", ["kd"]), ("fp32", ["figkd"])]
    assert not any(r["cuda_graph"] for r in eager["results"]) and eager["shared"] == []
    assert json.loads((out / "throughput_graph.json").read_text())["errors"] == []
    assert "in one run vs" in (out / "log.txt").read_text()


def test_first_contact_overhead_and_profile(first_contact):
    _, summary, out = first_contact
    overhead, profile = summary["steps"][5], summary["steps"][6]
    assert [r["label"] for r in overhead["results"]] == ["KD", "FiGKD (J = 1)", "FiGKD (J = 2)", "FiGKD (J = 3)"]
    assert profile["mode"] == "graph" and profile["cuda_graph"] and profile["wall_ms_per_step"] > 0
    assert profile["gpu_busy"] is None  # no kernels on the CPU
    top_cpu = json.loads((out / "profile_graph.json").read_text())["result"]["top_cpu"]
    assert any("conv" in row["name"] for row in top_cpu)
    assert "Self CPU" in (out / "log.txt").read_text()


def test_first_contact_fills_the_goals(first_contact):
    _, summary, _ = first_contact
    goals = {g["goal"]: g for g in summary["goals"]}
    assert set(goals) == {"epoch_s", "figkd_j1_overhead_pct", "shared_speedup"}
    for g in goals.values():
        assert isinstance(g["measured"], float) and isinstance(g["met"], bool)
    assert goals["shared_speedup"]["measured"] == summary["steps"][3]["shared"][0]["speedup"]


def test_first_contact_skips_what_the_budget_cannot_hold(tmp_path):
    result, summary = _first_contact(tmp_path / "out", "--budget", "6")  # 5 s are kept for the summary
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["environment"]["status"] == "skipped" and "needs at least" in steps["environment"]["reason"]
    assert all(s["status"] == "skipped" and "environment" in s["reason"] for s in summary["steps"][1:])
