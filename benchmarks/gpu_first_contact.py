"""GPU first contact: does figkd's GPU path run, match eager, and how fast is it, in one bounded command.

Issue #26. Written for the first session that is lent a GPU (one H100/H200, 10 minutes per command, 15
minutes of device time in all, no network, at most 8 files of at most 2 folder levels back from the output
folder): it runs the checks and measurements ordered by their value, each in a process of its own under a
time cap, and skips what would overrun the remaining budget (the summary says so), so that a run cut short
still returns the most important figures first. Steps, in this order:

0. ``environment``: torch, CUDA, the GPU, PyWavelets, a matrix product on the device; writes the data and
   the teacher the smoke step uses (nothing can be downloaded there).
1. ``smoke``: ``figkd distill`` for 2 epochs on synthetic data in CIFAR-100's own files (``cifar100``
   loader, 100 classes whose images are a class pattern plus noise, so that top-1 can rise above chance),
   teacher -> student (resnet32x4 -> resnet8x4; the teacher is untrained, its BatchNorm statistics set
   on the data), objectives ``kd figkd`` side by side, in the modes ``graph`` (bf16 + channels_last,
   ``cuda_graph: on``), ``bf16_cl`` and ``fp32``: exit status, per-epoch losses, test top-1, whether the
   step was captured or why not (the run's log and ``cuda_graph`` of ``metrics.jsonl``).
2. ``cuda_tests``: the tests that skip without CUDA (``reason="needs CUDA"``: the captured step against
   eager steps, the wavelets on CUDA), found in ``tests/`` by that decorator.
3. ``throughput_graph``: ``benchmarks/throughput.py`` in the captured mode, KD, FiGKD and DKD alone and the
   three as students of one run (one teacher forward per step) against three runs; ms/step and s/epoch
   (training steps plus the 10,000-image evaluation). ``throughput_eager``: KD and FiGKD in ``bf16_cl``
   and ``fp32``.
4. ``overhead``: ``figkd analyze overhead`` (Table 14: KD and FiGKD at J = 1, 2, 3 in the engine's step);
   ``profile``: ``benchmarks/profile_step.py`` of the captured FiGKD step.

The goals the summary compares against (issue #26): FiGKD resnet32x4 -> resnet8x4 on the paper's recipe
at <= 1.25 s per epoch including evaluation (240 epochs in 5 minutes); FiGKD's loss <= 1% over KD's step
at J = 1; 3 students on one teacher >= 1.6x the throughput of 3 runs.

Output folder (``OUT``, or ``$OUT``), seven files and no subfolder: ``summary.json`` (the plan, then
each step as it starts and ends, so a kill keeps what finished; the goals with what was measured),
``log.txt`` (every command and its output), ``throughput_graph.json`` and ``throughput_eager.json``
(rewritten after each measurement), ``overhead.json`` and ``overhead.png``, ``profile_graph.json``.
Scratch files (data, run directories) go to a temporary folder. The exit status is the number of steps
that failed or ran out of time; ``summary.json`` says which and why, with the tail of their output.

    bash benchmarks/gpu_first_contact.sh "$OUT"                    # on the GPU machine (default budget)
    bash benchmarks/gpu_first_contact.sh "$OUT" --only smoke cuda_tests --budget 200   # a second try
    bash benchmarks/gpu_first_contact.sh /tmp/gfc --tiny --device cpu                  # the CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

#: Issue #26's goals: (key, what, target). ``measured`` and ``met`` are filled from the steps.
GOALS = [
    ("epoch_s", "FiGKD resnet32x4 -> resnet8x4, paper recipe (batch 64, 781 steps + 10,000 test images): "
                "s per epoch, captured step (240 epochs in 5 minutes)", "<= 1.25"),
    ("figkd_j1_overhead_pct", "FiGKD (J = 1) step over KD's step, percent (Table 14's setting)", "<= 1.0"),
    ("shared_speedup", "3 students on one teacher forward: throughput over 3 separate runs", ">= 1.6"),
]
#: Measured on an H100 on 2026-11-26 (issue #26): the reference loop's epoch and a prototype's step.
ANCHORS = {"mdistiller_s_per_epoch": [9.0, 10.4], "prototype_captured_bf16_ms_per_step": 2.24}

#: The sizes of each step: ``full`` on the GPU, ``tiny`` for the CPU dry run (tests/test_benchmarks.py).
SIZES = {
    "full": {"teacher": "resnet32x4", "student": "resnet8x4", "batch": 64, "smoke_train": 5120, "smoke_test": 2000,
             "eval_batch": 512, "calibrate": 1024, "tp_steps": 200, "tp_repeats": 3, "tp_eval": 10000,
             "ov_steps": 200, "ov_repeats": 5, "prof_steps": 100, "prof_eval": 512},
    "tiny": {"teacher": "resnet8", "student": "resnet8", "batch": 8, "smoke_train": 32, "smoke_test": 16,
             "eval_batch": 16, "calibrate": 16, "tp_steps": 2, "tp_repeats": 1, "tp_eval": 16,
             "ov_steps": 2, "ov_repeats": 1, "prof_steps": 2, "prof_eval": 16},
}
#: Smoke modes, most valuable first: the engine's default on CUDA (captured), then the eager paths.
SMOKE_MODES = {
    "graph": {"amp": "bf16", "channels_last": "on", "cuda_graph": "on"},
    "bf16_cl": {"amp": "bf16", "channels_last": "on", "cuda_graph": "off"},
    "fp32": {"amp": "none", "channels_last": "off", "cuda_graph": "off"},
}
#: Each step: (name, cap in seconds, the least time it needs to be worth starting). The caps sum past the
#: budget on purpose: each is a ceiling for a step that hangs, and the budget decides what runs.
STEPS = [
    ("environment", 90, 10),
    ("smoke", 150, 20),
    ("cuda_tests", 120, 20),
    ("throughput_graph", 150, 40),
    ("throughput_eager", 150, 40),
    ("overhead", 120, 30),
    ("profile", 90, 20),
]
SMOKE_RUN_CAP = 50  # seconds for one mode's `figkd distill` (start-up, 2 epochs, 2 evaluations)
RESERVE = 5  # seconds kept at the end of the budget for the last summary


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: Path, payload) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file renamed onto it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class FirstContact:
    """The steps, the budget, the output folder and the summary they fill."""

    def __init__(self, args: argparse.Namespace, out: Path, work: Path):
        self.args, self.out, self.work = args, out, work
        self.size = SIZES["tiny" if args.tiny else "full"]
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget - RESERVE
        self.log = out / "log.txt"
        self.device = args.device
        self.summary = {
            "script": "benchmarks/gpu_first_contact.sh", "issue": 26, "started": _now(), "finished": None,
            "budget_s": args.budget, "elapsed_s": 0.0, "dry_run": bool(args.tiny), "size": self.size,
            "argv": sys.argv[1:], "commit": self._commit(), "environment": None,
            "goals": [{"goal": key, "what": what, "target": target, "measured": None, "met": None}
                      for key, what, target in GOALS],
            "anchors": ANCHORS,
            "plan": [{"name": name, "cap_s": cap, "min_s": need} for name, cap, need in STEPS], "steps": [],
        }
        if args.tiny:
            self.summary["note"] = "tiny dry run (--tiny): the figures only show that every step runs"

    # ---- bookkeeping ----------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.summary["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        self._goals()
        _write_json(self.out / "summary.json", self.summary)

    def say(self, line: str) -> None:
        print(line, flush=True)
        with open(self.log, "a") as f:
            f.write(line + "\n")

    @staticmethod
    def _commit() -> str | None:
        try:
            r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() or None

    def sh(self, label: str, argv: list[str], timeout: float) -> tuple[int | None, float, str]:
        """Run ``argv`` from the repository root, its output appended to ``log.txt``; returns the exit
        status (None: killed at ``timeout`` seconds, with its whole process group), seconds and output."""
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONUNBUFFERED": "1"}
        self.say(f"--- {label}: {' '.join(argv)} (cap {timeout:.0f} s, {_now()})")
        start = self.log.stat().st_size
        t = time.monotonic()
        rc: int | None = None
        with open(self.log, "ab") as f:
            p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                rc = p.wait(timeout=max(timeout, 1.0))
            except subprocess.TimeoutExpired:
                pass
            finally:  # at the cap, or when the driver itself is stopped: the step's processes go too
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        seconds = round(time.monotonic() - t, 1)
        with open(self.log, "rb") as f:
            f.seek(start)
            output = f.read().decode(errors="replace")
        self.say(f"--- {label}: {'killed at its cap' if rc is None else f'exit {rc}'} after {seconds} s")
        return rc, seconds, output

    # ---- the driver ----------------------------------------------------------------------------
    def run(self) -> int:
        self.say(f"figkd GPU first contact, {_now()}, budget {self.args.budget} s, out {self.out}")
        self.save()
        for name, cap, need in STEPS:
            record = {"name": name, "status": "running", "reason": None, "seconds": 0.0}
            self.summary["steps"].append(record)
            self.save()
            left = self.left()
            if self.args.only and name not in self.args.only and name != "environment":
                record.update(status="skipped", reason="not selected (--only)")
            elif name != "environment" and self.summary["environment"] is None:
                record.update(status="skipped", reason="the environment step did not succeed: nothing else can run")
            elif left < need:
                record.update(status="skipped", reason=f"{left:.0f} s of the budget left, the step needs at least "
                                                       f"{need} s")
            else:
                t = time.monotonic()
                try:
                    getattr(self, f"step_{name}")(record, min(cap, left))
                except Exception as exc:  # noqa: BLE001 - a broken step is recorded, the next ones still run
                    record.update(status="failed", reason=f"the driver failed: {type(exc).__name__}: {exc}")
                except BaseException:  # stopped from outside (SIGTERM, Ctrl-C): keep what is known, then stop
                    record.update(status="killed", reason="the driver was stopped during this step",
                                  seconds=round(time.monotonic() - t, 1))
                    self.save()
                    raise
                record["seconds"] = round(time.monotonic() - t, 1)
            self.say(f"=== {name}: {record['status']}" + (f" ({record['reason']})" if record["reason"] else "")
                     + f", {record['seconds']} s")
            self.save()
        self.summary["finished"] = _now()
        self.save()
        self.table()
        return sum(r["status"] in ("failed", "timeout") for r in self.summary["steps"])

    def _finish(self, record: dict, rc: int | None, seconds: float, output: str, cap: float) -> None:
        record["exit_status"] = rc
        if rc is None:
            record.update(status="timeout", reason=f"killed at its cap of {cap:.0f} s", output_tail=_tail(output))
        elif rc != 0:
            record.update(status="failed", reason=f"exit status {rc}", output_tail=_tail(output))
        else:
            record["status"] = "ok"

    # ---- 0. environment ------------------------------------------------------------------------
    def step_environment(self, record: dict, cap: float) -> None:
        argv = [sys.executable, str(Path(__file__)), "--prepare", str(self.work), "--device", self.device]
        if self.args.tiny:
            argv.append("--tiny")
        rc, seconds, output = self.sh("environment", argv, cap)
        self._finish(record, rc, seconds, output, cap)
        smi = shutil.which("nvidia-smi")
        nvidia = None
        if smi:
            try:
                r = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                    "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
                nvidia = r.stdout.strip() or r.stderr.strip()
            except (OSError, subprocess.TimeoutExpired) as exc:
                nvidia = f"nvidia-smi failed: {exc}"
        if record["status"] == "ok":
            env = json.loads((self.work / "environment.json").read_text())
            env["nvidia_smi"] = nvidia
            self.summary["environment"] = env
            self.device = env["device"]
            record["device"] = env["device"]

    # ---- 1. smoke ------------------------------------------------------------------------------
    def step_smoke(self, record: dict, cap: float) -> None:
        s = self.size
        end = time.monotonic() + cap
        record["runs"] = runs = []
        for mode, settings in SMOKE_MODES.items():
            run = {"mode": mode, **settings}
            runs.append(run)
            left = end - time.monotonic()
            if mode == "graph" and not self.device.startswith("cuda"):
                run.update(status="skipped", reason=f"the captured step needs CUDA: on {self.device} figkd refuses "
                                                    "cuda_graph=on (the throughput and profile steps check the "
                                                    "capture on the CPU through the recording backend)")
                continue
            if left < 10:
                run.update(status="skipped", reason=f"{left:.0f} s left of the step's cap")
                continue
            out = self.work / "smoke" / mode
            argv = [sys.executable, "-m", "figkd", "distill", "--dataset", "cifar100",
                    "--data-root", str(self.work / "cifar"), "--teacher", s["teacher"],
                    "--teacher-ckpt", str(self.work / "teacher.safetensors"), "--student", s["student"],
                    "--objective", "kd", "figkd", "--epochs", "2", "--batch-size", str(s["batch"]),
                    "--device", self.device, "--out", str(out), "--overwrite"]
            for key, value in {"eval_batch_size": s["eval_batch"], "lr_milestones": "[]", "tensorboard": "false",
                               "progress": "off", **settings}.items():
                argv += ["--set", f"{key}={value}"]
            run_cap = min(SMOKE_RUN_CAP, left)
            rc, seconds, output = self.sh(f"smoke {mode}", argv, run_cap)
            run.update(exit_status=rc, seconds=seconds,
                       status="ok" if rc == 0 else "timeout" if rc is None else "failed")
            if rc is None:
                run["reason"] = f"killed at its cap of {run_cap:.0f} s"
            run["graph_log"] = re.findall(r"CUDA graph: .*", output)
            run["members"] = _members(out)
            run["captured"] = any(e["cuda_graph"] for m in run["members"].values() for e in m["epochs"])
            if rc != 0:
                errors = [line for line in output.splitlines() if line.startswith("figkd: error:")]
                run["error"] = errors[-1] if errors else _tail(output, 1)
                run["output_tail"] = _tail(output)
            if not run["captured"]:
                run["why_not_captured"] = ("cuda_graph is off in this mode" if settings["cuda_graph"] == "off" else
                                           "; ".join(run["graph_log"]) or run.get("error") or run.get("reason")
                                           or "not logged")
            self.save()
        bad = [r["mode"] for r in runs if r["status"] in ("failed", "timeout")]
        ran = [r for r in runs if r["status"] == "ok"]
        if bad:
            record.update(status="failed", reason=f"mode(s) {', '.join(bad)} did not finish")
        elif not ran:
            record.update(status="skipped", reason="no mode ran")
        else:
            record["status"] = "ok"
            skipped = [r["mode"] for r in runs if r["status"] == "skipped"]
            if skipped:
                record["reason"] = f"mode(s) {', '.join(skipped)} skipped (see runs)"

    # ---- 2. the CUDA-only tests ----------------------------------------------------------------
    def step_cuda_tests(self, record: dict, cap: float) -> None:
        record["tests"] = tests = cuda_only_tests()
        xml = self.work / "cuda_tests.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-rs", "-n", "0", "-p", "no:cacheprovider", *tests,
                f"--junitxml={xml}"]
        rc, seconds, output = self.sh("cuda_tests", argv, cap)
        self._finish(record, rc, seconds, output, cap)
        if xml.exists():
            record["cases"] = cases = _junit(xml)
            record["counts"] = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "skipped")}

    # ---- 3. throughput -------------------------------------------------------------------------
    def _throughput(self, record: dict, cap: float, name: str, modes: list[str], objectives: list[str],
                    shared: bool) -> None:
        s = self.size
        out = self.out / f"{name}.json"  # throughput.py rewrites it after each measurement: a kill keeps those
        argv = [sys.executable, str(BENCH / "throughput.py"), "--device", self.device, "--teacher", s["teacher"],
                "--student", s["student"], "--dataset", "cifar100", "--batch-size", str(s["batch"]),
                "--steps", str(s["tp_steps"]), "--repeats", str(s["tp_repeats"]), "--eval-samples", str(s["tp_eval"]),
                "--modes", *modes, "--objectives", *objectives, "--out", str(out)] + (["--shared"] if shared else [])
        rc, seconds, output = self.sh(name, argv, cap)
        self._finish(record, rc, seconds, output, cap)
        if out.exists():
            data = json.loads(out.read_text())
            keep = ("mode", "objectives", "cuda_graph", "ms_per_step", "epoch_s", "epoch_train_s", "epoch_eval_s",
                    "eval_ms_per_image", "projected_min", "separate_ms_per_step", "speedup")
            record["results"] = [{k: r[k] for k in keep if k in r} for r in data["results"]]
            record["shared"] = [{k: r[k] for k in keep if k in r} for r in data["shared"]]
            record["errors"] = data["errors"]

    def step_throughput_graph(self, record: dict, cap: float) -> None:
        self._throughput(record, cap, "throughput_graph", ["graph"], ["kd", "figkd", "dkd"], shared=True)

    def step_throughput_eager(self, record: dict, cap: float) -> None:
        self._throughput(record, cap, "throughput_eager", ["bf16_cl", "fp32"], ["kd", "figkd"], shared=False)

    # ---- 4. overhead and profile ---------------------------------------------------------------
    def step_overhead(self, record: dict, cap: float) -> None:
        s = self.size
        argv = [sys.executable, "-m", "figkd", "analyze", "overhead", "--teacher", s["teacher"], "--student",
                s["student"], "--dataset", "cifar100", "--batch-size", str(s["batch"]), "--steps",
                str(s["ov_steps"]), "--repeats", str(s["ov_repeats"]), "--device", self.device, "--out", str(self.out)]
        rc, seconds, output = self.sh("overhead", argv, cap)  # writes overhead.json and overhead.png
        self._finish(record, rc, seconds, output, cap)
        if rc == 0:
            data = json.loads((self.out / "overhead.json").read_text())
            record["mode"] = data["setting"]["mode"]
            record["results"] = [{"label": r["label"], "s_per_batch": r["s_per_batch"],
                                  "s_per_batch_all": r["s_per_batch_all"], "overhead_pct": r["overhead_pct"]}
                                 for r in data["results"]]

    def step_profile(self, record: dict, cap: float) -> None:
        s = self.size
        out = self.out / "profile_graph.json"
        argv = [sys.executable, str(BENCH / "profile_step.py"), "--device", self.device, "--mode", "graph",
                "--teacher", s["teacher"], "--student", s["student"], "--dataset", "cifar100", "--objectives",
                "figkd", "--batch-size", str(s["batch"]), "--steps", str(s["prof_steps"]), "--eval-samples",
                str(s["prof_eval"]), "--out", str(out)]
        rc, seconds, output = self.sh("profile", argv, cap)
        self._finish(record, rc, seconds, output, cap)
        if out.exists():
            result = json.loads(out.read_text())["result"]
            record.update({k: result[k] for k in ("mode", "cuda_graph", "wall_ms_per_step", "kernel_ms_per_step",
                                                  "gpu_busy", "kernels_per_step")})
            record["top_kernels"] = result["top_kernels"][:5]

    # ---- goals and the closing table -----------------------------------------------------------
    def _step(self, name: str) -> dict:
        return next((r for r in self.summary["steps"] if r["name"] == name), {})

    def _goals(self) -> None:
        graph = self._step("throughput_graph")
        fig = [r for r in graph.get("results", []) if r["objectives"] == ["figkd"] and "epoch_s" in r]
        shared = [r for r in graph.get("shared", []) if r.get("speedup") is not None]
        j1 = [r for r in self._step("overhead").get("results", []) if r["label"] == "FiGKD (J = 1)"]
        measured = {"epoch_s": fig[0]["epoch_s"] if fig else None,
                    "figkd_j1_overhead_pct": j1[0]["overhead_pct"] if j1 else None,
                    "shared_speedup": shared[0]["speedup"] if shared else None}
        for goal in self.summary["goals"]:
            value = measured[goal["goal"]]
            op, bound = goal["target"].split()
            goal["measured"] = value
            goal["met"] = None if value is None else (value <= float(bound) if op == "<=" else value >= float(bound))

    def table(self) -> None:
        print("\nstep              status    seconds  reason")
        for r in self.summary["steps"]:
            print(f"{r['name']:<17} {r['status']:<9} {r['seconds']:>7.1f}  {r['reason'] or ''}")
        for run in self._step("smoke").get("runs", []):
            tops = ", ".join(f"{k} {m['epochs'][-1].get('test/top1', float('nan')):.2f}"
                             for k, m in run.get("members", {}).items() if m["epochs"])
            print(f"  smoke {run['mode']:<8} {run['status']:<8} captured {run.get('captured')}  top-1: {tops}"
                  + (f"  ({run.get('why_not_captured') or run.get('reason')})" if not run.get("captured") else ""))
        for name in ("throughput_graph", "throughput_eager"):
            for r in self._step(name).get("results", []) + self._step(name).get("shared", []):
                extra = f"  {r['speedup']:.2f}x of separate runs" if r.get("speedup") else ""
                print(f"  {r['mode']:<8} {'+'.join(r['objectives']):<14} {r['ms_per_step']:8.3f} ms/step  "
                      f"epoch {r['epoch_s']:7.2f} s (train {r['epoch_train_s']:.2f} + eval {r['epoch_eval_s']:.2f})"
                      + extra)
        for r in self._step("overhead").get("results", []):
            over = "" if r["overhead_pct"] is None else f" {r['overhead_pct']:+.1f}%"
            print(f"  overhead {r['label']:<14} {1000 * r['s_per_batch']:.3f} ms/step{over}")
        for goal in self.summary["goals"]:
            print(f"goal {goal['goal']}: {goal['target']}, measured {goal['measured']}, met {goal['met']}")
        print(f"summary: {self.out / 'summary.json'} ({self.summary['elapsed_s']} s of {self.args.budget} s)")


def cuda_only_tests() -> list[str]:
    """The pytest node ids of the tests that skip without CUDA: each ``def test_...`` under a decorator
    ``@pytest.mark.skipif(..., reason="needs CUDA")`` in ``tests/test_*.py`` (other decorators between)."""
    pattern = re.compile(r'reason="needs CUDA"\)\s*\n(?:\s*@.*\n)*\s*def (test_\w+)')
    return [f"{p.relative_to(ROOT)}::{name}" for p in sorted((ROOT / "tests").glob("test_*.py"))
            for name in pattern.findall(p.read_text())]


def _members(run_root: Path) -> dict:
    """Per student of a distill run: each epoch's loss terms, test top-1, ``cuda_graph`` and times."""
    members = {}
    for metrics in sorted(run_root.glob("*/metrics.jsonl")):
        epochs = []
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            epochs.append({"epoch": row["epoch"], "cuda_graph": row.get("cuda_graph", 0),
                           "losses": {k.split("/")[-1]: v for k, v in row.items() if k.startswith("train/loss/")},
                           **{k: row[k] for k in ("test/top1", "train_time_s", "eval_time_s") if k in row}})
        members[metrics.parent.name] = {"epochs": epochs}
    return members


def _junit(xml: Path) -> list[dict]:
    """Each test case of a JUnit XML file: name, outcome and the skip/failure message."""
    cases = []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", None
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                message = (child.get("message") or "")[:500]
        cases.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0), "message": message})
    return cases


# ---- the environment step's own process -----------------------------------------------------------
def prepare(work: Path, device_spec: str, size: dict) -> None:
    """Check the environment and write what the smoke step needs into ``work``: ``cifar/cifar-100-python``
    (synthetic images in CIFAR-100's own pickled files), ``teacher.safetensors`` (an untrained teacher with
    BatchNorm statistics of those images) and ``environment.json``."""
    import platform

    import numpy as np
    import pywt
    import torch

    import figkd
    from figkd.data import recipe_for
    from figkd.engine.device import resolve_device
    from figkd.engine.distributed import DistInfo
    from figkd.models import build_model, save_weights

    device = resolve_device(device_spec, DistInfo())
    cuda = device.type == "cuda"
    env = {"device": str(device), "python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
           "numpy": np.__version__, "pywavelets": pywt.__version__, "figkd": getattr(figkd, "__version__", None),
           "cpus": os.cpu_count(), "date": _now()}
    if cuda:
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2 ** 30, 1), multiprocessors=props.multi_processor_count)
        a = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16)
        torch.cuda.synchronize(device)
        t = time.perf_counter()
        for _ in range(10):
            b = a @ a
        torch.cuda.synchronize(device)
        env["bf16_matmul_tflops"] = round(10 * 2 * 4096 ** 3 / (time.perf_counter() - t) / 1e12, 1)
        env["matmul_finite"] = bool(torch.isfinite(b).all())
    print(json.dumps(env, indent=1))

    rng = np.random.default_rng(0)
    classes = 100
    patterns = np.kron(rng.integers(0, 256, size=(classes, 3, 4, 4)), np.ones((8, 8))).astype(np.float32)
    folder = work / "cifar" / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in (("train", size["smoke_train"]), ("test", size["smoke_test"])):
        labels = rng.permutation(np.arange(n) % classes)
        noise = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.float32)
        images = (0.5 * patterns[labels] + 0.5 * noise).astype(np.uint8)
        splits[split] = images
        with open(folder / split, "wb") as f:  # protocol 2, as the official files: plain numpy reconstruction
            pickle.dump({"data": images.reshape(n, -1), "fine_labels": labels.tolist()}, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(classes)]}, f, protocol=2)

    recipe = recipe_for("cifar100")
    mean = torch.tensor(recipe.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, device=device).view(1, 3, 1, 1)
    torch.manual_seed(0)
    teacher = build_model(size["teacher"], classes).to(device)
    for m in teacher.modules():  # running statistics: the plain average over the calibration images
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    teacher.train()
    images = torch.from_numpy(splits["train"][: size["calibrate"]]).to(device)
    with torch.no_grad():
        for chunk in images.split(256):
            teacher((chunk.float() / 255 - mean) / std)
    for m in teacher.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    save_weights(teacher.eval(), work / "teacher.safetensors",
                 metadata={"note": "untrained; BatchNorm statistics of the synthetic smoke data"})
    (work / "environment.json").write_text(json.dumps(env, indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", default=os.environ.get("OUT"),
                   help="output folder (default: $OUT); 7 files are written there, no subfolder")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for all steps (default 420: with the machine's start, a 15-minute lease leaves "
                        "time for a second, shorter try)")
    p.add_argument("--only", nargs="+", choices=[name for name, _, _ in STEPS], default=None,
                   help="run only these steps (environment always runs)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (resnet8, a few steps): the CPU dry run")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary folder, removed at the end)")
    p.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    size = SIZES["tiny" if args.tiny else "full"]
    if args.prepare:
        prepare(Path(args.prepare), args.device, size)
        return 0
    if not args.out:
        p.error("give the output folder (OUT) or set $OUT")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwinds: the summary is saved
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="figkd-first-contact-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return FirstContact(args, out, work).run()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
