"""figkd sweep: planning (run directories, teachers first, chains, conflicts), the Slurm script, and a real
sweep on digits (2 configs x 2 seeds, --jobs 2, one run failing on purpose, an interrupted one resumed,
finished ones skipped), then figkd report on the tree it leaves."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml

from figkd.cli import main
from figkd.config import ConfigError
from figkd.engine.faults import FAULT_ENV
from figkd.experiments.report import report
from figkd.experiments.slurm import slurm_script, waves, write_slurm_script
from figkd.experiments.sweep import describe, execute, plan, run_env, seeded_out, summarize, threads_per_run

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = {"dataset": "digits_16", "epochs": 1, "batch_size": 64, "lr_milestones": [1], "device": "cpu",
        "progress": "off", "tensorboard": False}


def _write(path: Path, **fields) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields))
    return path


# ------------------------------------------------------------------------------------------------ planning
def test_seeded_out():
    assert seeded_out("runs/x/kd-s0", 0, 0) == "runs/x/kd-s0"
    assert seeded_out("runs/x/kd-s0", 0, 2) == "runs/x/kd-s2"
    assert seeded_out("runs/x/kd-s12/", 12, 3) == "runs/x/kd-s3"
    assert seeded_out("runs/x/kd", 0, 1) == "runs/x/kd-s1"
    assert seeded_out("runs/x/kd", 0, 0) == "runs/x/kd"


def test_plan_orders_teachers_and_chains_first(tmp_path, monkeypatch):
    """A TAKD-style chain listed backwards: student <- assistant <- teacher; the plan runs it forwards, and the
    run directories of configs without out are the engine's."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "c" / "1-student.yaml", **TINY, teacher="resnet8", teacher_ckpt="runs/assistant-s0",
           student="resnet8", objective="kd", out="runs/student-s0")
    _write(tmp_path / "c" / "2-assistant.yaml", **TINY, teacher="resnet8",
           teacher_ckpt="runs/train/digits_16/resnet8-s0/checkpoints/best.safetensors", student="resnet8",
           objective="kd", out="runs/assistant-s0")
    _write(tmp_path / "c" / "3-teacher.yaml", **TINY, model="resnet8")
    runs = plan(["c"], seeds=[0, 1])
    dirs = [str(r.run_dir) for r in runs]
    assert dirs.index("runs/train/digits_16/resnet8-s0") < dirs.index("runs/assistant-s0") < dirs.index(
        "runs/student-s0")
    assert "runs/train/digits_16/resnet8-s1" in dirs and "runs/student-s1" in dirs
    for r in runs:  # every seed of a student waits for the seed-0 run its config names
        if r.command == "distill":
            [dep] = r.deps
            assert dep < runs.index(r)
            assert str(runs[dep].run_dir) in r.cfg["teacher_ckpt"]
        assert r.args[:1] == [r.command] and "--resume" in r.args and f"seed={r.seed}" in r.args
    assert {r.state for r in runs} == {"fresh"}
    assert [len(w) for w in waves(runs)] == [2, 2, 2]
    text = describe(runs, 2, ["0", "1"])
    assert "2 at a time, each pinned to one of GPUs 0,1" in text and text.count("python -m figkd") == 6


def test_plan_refuses_conflicts_and_cycles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "a.yaml", **TINY, model="resnet8", out="runs/same")
    _write(tmp_path / "b.yaml", **TINY, model="resnet20", out="runs/same")
    with pytest.raises(ConfigError, match="both write runs/same"):
        plan(["a.yaml", "b.yaml"])
    # the same experiment named twice (file and folder) is one run
    assert len(plan(["a.yaml", str(tmp_path / "a.yaml")])) == 1
    _write(tmp_path / "cyc" / "x.yaml", **TINY, teacher="resnet8", teacher_ckpt="runs/y", student="resnet8",
           out="runs/x")
    _write(tmp_path / "cyc" / "y.yaml", **TINY, teacher="resnet8", teacher_ckpt="runs/x", student="resnet8",
           out="runs/y")
    with pytest.raises(ConfigError, match="cycle"):
        plan(["cyc"])
    with pytest.raises(ConfigError, match="chosen by the sweep"):
        plan(["a.yaml"], set_items=["seed=3"])
    with pytest.raises(ConfigError, match="neither a config file nor a folder"):
        plan(["missing.yaml"])


def test_threads_and_gpus_are_divided():
    assert threads_per_run(2, cpus=2, env={}) == 1 and threads_per_run(4, cpus=16, env={}) == 4
    assert threads_per_run(8, cpus=2, env={}) == 1
    # an OMP_NUM_THREADS of the sweep's environment caps the share; --threads sets it
    assert threads_per_run(1, cpus=16, env={"OMP_NUM_THREADS": "2"}) == 2
    assert threads_per_run(4, cpus=16, env={"OMP_NUM_THREADS": "8"}) == 4
    assert threads_per_run(4, cpus=16, threads=6, env={"OMP_NUM_THREADS": "1"}) == 6
    assert run_env(0, 1, None, base={"OMP_NUM_THREADS": "1"})["OMP_NUM_THREADS"] == "1"
    with pytest.raises(ConfigError, match="--threads must be >= 1"):
        threads_per_run(1, threads=0)
    env = run_env(3, 4, ["0", "1"], base={})
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == str(threads_per_run(4, env={}))
    assert "CUDA_VISIBLE_DEVICES" not in run_env(0, 2, None, base={})


def test_slurm_script_submits_waves_and_runs_tasks(tmp_path, monkeypatch):
    """The script is valid bash; run as a submitter it calls sbatch once per wave, each after the previous
    (a stub sbatch records the calls); run as array task i it runs command i of its wave."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "c" / "t.yaml", **TINY, model="resnet8", out="runs/t-s0")
    _write(tmp_path / "c" / "s.yaml", **TINY, teacher="resnet8", teacher_ckpt="runs/t-s0", student="resnet8",
           objective="kd", out="runs/s-s0")
    runs = plan(["c"], seeds=[0, 1])
    script = write_slurm_script(runs, tmp_path / "sweep.sh", jobs=2, options=["--gres=gpu:1"])
    text = script.read_text()
    assert "#SBATCH --array=0-1%2" in text and "#SBATCH --gres=gpu:1" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\necho "$@" >> "$SBATCH_LOG"\n'
                                    'echo "$(( $(wc -l < "$SBATCH_LOG") + 100 ))"\n')
    (bin_dir / "sbatch").chmod(0o755)
    (bin_dir / "fakepython").write_text('#!/bin/bash\necho "ARGS $*"\n')
    (bin_dir / "fakepython").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(tmp_path / "sbatch.log")}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert len(calls) == 2
    assert "--array=0-1%2" in calls[0] and "dependency" not in calls[0] and "FIGKD_WAVE=0" in calls[0]
    assert "--dependency=afterany:101" in calls[1] and "FIGKD_WAVE=1" in calls[1]
    task = {**env, "SLURM_ARRAY_TASK_ID": "1", "FIGKD_WAVE": "1", "FIGKD_PYTHON": str(bin_dir / "fakepython")}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=task)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "runs" / "s-s1" / "sweep.log").read_text()
    assert "ARGS -m figkd distill --config c/s.yaml --set seed=1 --out runs/s-s1 --resume" in log
    # finished runs are left out of a script written later
    runs[0].state = "done"
    assert "t-s0" not in slurm_script(runs, tmp_path / "x.sh").split("COMMANDS=(")[1]


# ------------------------------------------------------------------------------------------------ a real sweep
@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Three invocations of figkd sweep on 2 configs x 2 seeds (--jobs 2) in a fresh folder: a teacher
    (2 epochs) and a KD student of its seed-0 run (1 epoch). The seed-1 teacher fails on purpose every
    time (its directory holds a file figkd did not write, so it is not a run directory figkd may use). The
    command runs in this process (its runs
    are processes, as always), which saves starting Python twice.

    1. with the runs killed at epoch 2, step 3 (FIGKD_FAULT_AT): the seed-0 teacher dies, both students
       are blocked;
    2. again: the teacher resumes after epoch 1 and finishes, then both students run; the failure stays;
    3. again (:func:`execute`, what the command calls): nothing starts but the failing run, every finished
       run is skipped.
    """
    root = tmp_path_factory.mktemp("sweep")
    _write(root / "configs" / "teacher.yaml", **{**TINY, "epochs": 2}, model="resnet8", out="runs/teacher-s0")
    _write(root / "configs" / "student.yaml", **TINY, teacher="resnet8", teacher_ckpt="runs/teacher-s0",
           student="resnet8", objective="kd", out="runs/kd-s0")
    conflict = root / "runs" / "teacher-s1"
    conflict.mkdir(parents=True)
    (conflict / "notes.txt").write_text("someone's own file")
    results = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))  # the runs' figkd is ours
        for env in ({FAULT_ENV: "2:3"}, {}):
            for key, value in env.items():
                mp.setenv(key, value)
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = main(["sweep", "configs", "--seeds", "0", "1", "--jobs", "2", "--progress", "off"])
            results.append(subprocess.CompletedProcess([], code, stdout.getvalue(), ""))
            mp.delenv(FAULT_ENV, raising=False)
        runs = plan(["configs"], seeds=[0, 1])
        lines: list[str] = []
        outcomes = execute(runs, jobs=2, progress=False, echo=lines.append)
    return root, results + [(runs, outcomes, lines)]


def test_sweep_failures_are_listed_and_blocked_students_wait(swept):
    root, (first, _, _) = swept
    assert first.returncode == 1, first.stdout + first.stderr
    assert "4 runs: 2 failed, 2 blocked" in first.stdout
    assert "[failed] runs/teacher-s0" in first.stdout and "exit -9" in first.stdout
    assert "[blocked] runs/kd-s0" in first.stdout and "runs/teacher-s0 did not finish" in first.stdout
    # the students were first started by the second sweep (one header in their logs)
    for seed in (0, 1):
        assert (root / "runs" / f"kd-s{seed}" / "sweep.log").read_text().count("# figkd sweep") == 1


def test_sweep_resumes_interrupted_runs_and_keeps_going(swept):
    root, (_, second, _) = swept
    assert second.returncode == 1, second.stdout + second.stderr
    assert "4 runs: 3 finished, 1 failed" in second.stdout
    assert "[failed] runs/teacher-s1" in second.stdout and "not a figkd run directory" in second.stdout
    teacher = root / "runs" / "teacher-s0"
    epochs = [json.loads(x)["epoch"] for x in (teacher / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # epoch 1 from the killed attempt, epoch 2 after resuming
    log = (teacher / "sweep.log").read_text()
    assert log.count("# figkd sweep") == 2 and "resuming after epoch 1" in log and "OMP_NUM_THREADS=1" in log
    for seed in (0, 1):
        assert (root / "runs" / f"kd-s{seed}" / "summary.json").is_file()
    # refused by the run directory's rule before any process starts: nothing is written into the foreign folder
    assert not (root / "runs" / "teacher-s1" / "sweep.log").exists()


def test_sweep_skips_finished_runs(swept):
    root, (_, _, (runs, outcomes, lines)) = swept
    assert "4 runs: 3 skipped, 1 failed" in summarize(outcomes) and "[skipped] runs/kd-s1: already finished" in lines
    assert [o.status for o in outcomes] == ["skipped", "failed", "skipped", "skipped"]
    assert (root / "runs" / "teacher-s0" / "sweep.log").read_text().count("# figkd sweep") == 2  # not started
    assert [(str(r.run_dir), r.state) for r in runs] == [
        ("runs/teacher-s0", "done"), ("runs/teacher-s1", "different"), ("runs/kd-s0", "done"), ("runs/kd-s1", "done")]
    assert describe(runs, 2, None).count("skip (finished)") == 3
    assert "# 1: fail: runs/teacher-s1 is not a figkd run directory (it holds " in describe(runs, 2, None)


def test_report_of_the_sweep_matches_the_summaries(swept, capsys):
    root, _ = swept
    summaries = {p.parent.name: json.loads(p.read_text()) for p in (root / "runs").glob("*/summary.json")}
    assert sorted(summaries) == ["kd-s0", "kd-s1", "teacher-s0"]
    for metric in ("last", "best"):
        rows = list(csv.DictReader(io.StringIO(report(root / "runs", fmt="csv", metric=metric))))
        assert {r["table"] for r in rows} == {"Runs of no paper table"}
        by_row = {r["row"].split(" (")[0]: r for r in rows}
        assert sorted(by_row) == ["resnet8 alone: vanilla", "resnet8 from resnet8: kd"]
        kd = by_row["resnet8 from resnet8: kd"]
        values = [summaries[f"kd-s{s}"][f"{metric}_top1"] for s in (0, 1)]
        assert kd["n"] == "2" and kd["seeds"] == "0 1" and kd["unfinished"] == ""
        assert float(kd["mean"]) == pytest.approx(statistics.fmean(values), abs=1e-4)
        assert float(kd["std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        alone = by_row["resnet8 alone: vanilla"]
        # teacher-s1 never ran: its folder holds no config.yaml, so it is not a run (not even an unfinished one)
        assert alone["n"] == "1" and alone["std"] == "" and alone["unfinished"] == ""
        assert float(alone["mean"]) == pytest.approx(summaries["teacher-s0"][f"{metric}_top1"], abs=1e-4)
    assert main(["report", str(root / "runs")]) == 0
    md = capsys.readouterr().out
    values = [summaries[f"kd-s{s}"]["last_top1"] for s in (0, 1)]
    assert f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} (n=2)" in md
    assert "last epoch" in md and "unfinished" not in md


def test_plan_runs_a_peers_config_as_distill_and_skips_it_when_every_peer_finished(tmp_path, monkeypatch):
    """A DML config (peers, no teacher) is a distill run; it is finished when every peer's directory holds
    the same finished run (the engine writes one per peer: <out>/peer<i>-<arch>)."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "c" / "dml.yaml", **TINY, peers=["resnet8", "resnet20"], objective="dml", out="runs/dml-s0")
    [r] = plan(["c"])
    assert r.command == "distill" and r.args[:1] == ["distill"] and r.state == "fresh"
    for i, arch in enumerate(("resnet8", "resnet20")):
        d = tmp_path / "runs" / "dml-s0" / f"peer{i}-{arch}"
        _write(d / "config.yaml", **r.cfg)
        if i == 0:
            (d / "summary.json").write_text("{}")
    assert plan(["c"])[0].state == "fresh"  # one peer unfinished: the engine resumes them together
    (tmp_path / "runs" / "dml-s0" / "peer1-resnet20" / "summary.json").write_text("{}")
    assert plan(["c"])[0].state == "done"


def test_sigterm_stops_the_sweep_and_its_runs_with_status_143(tmp_path):
    """SIGTERM to figkd sweep exits 143, as figkd distill does (docs/engine.md; it exited 130), after
    stopping its running run, which is listed as interrupted (issue 27, item 5)."""
    import signal
    import sys
    import time

    _write(tmp_path / "long.yaml", **{**TINY, "epochs": 200}, model="resnet8", out="runs/long")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "figkd", "sweep", "long.yaml", "--progress", "off"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = tmp_path / "runs" / "long" / "sweep.log"  # written just before the run's process starts
    deadline = time.monotonic() + 120
    while not started.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.is_file(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert err.strip().splitlines() == ["figkd: terminated (SIGTERM)"], err
    assert "1 runs: 1 interrupted" in out and "stopped; it resumes from its last checkpoint next time" in out


def test_ctrl_c_stops_the_sweep_with_status_130(tmp_path, monkeypatch, capsys):
    from figkd.experiments import sweep

    def interrupted(runs, *args, **kwargs):
        stop = KeyboardInterrupt()
        stop.outcomes = [sweep.Outcome(r, "interrupted", message="not started") for r in runs]
        raise stop

    monkeypatch.setattr(sweep, "execute", interrupted)
    _write(tmp_path / "a.yaml", **TINY, model="resnet8", out=str(tmp_path / "runs" / "a"))
    assert main(["sweep", str(tmp_path / "a.yaml"), "--progress", "off"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["figkd: interrupted"] and "1 runs: 1 interrupted" in captured.out
