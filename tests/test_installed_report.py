"""``figkd report`` from an installed (non-editable) figkd: the paper's tables are package data, not files of
a checkout. The package is built from a copy of this checkout's sources and installed into a fresh virtual
environment (``--system-site-packages`` for torch and the other dependencies; no network: ``--no-deps
--no-build-isolation --no-index``), then run from a folder outside any checkout, without PYTHONPATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from figkd.config import RunConfig
from figkd.experiments.report import report

ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, name: str, last: float, **cfg) -> None:
    """A finished run directory as the engine leaves it (config.yaml, metrics.jsonl, summary.json)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(RunConfig(**cfg).to_dict(), sort_keys=False))
    (d / "metrics.jsonl").write_text("")
    (d / "summary.json").write_text(f'{{"last_top1": {last}, "best_top1": {last}}}')


def _pip_supports_python_option() -> bool:
    version = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in version.split()[1].split(".")[:2]) >= (22, 3)


@pytest.mark.slow  # a build, an install and a figkd report: about 15 s on an idle machine
def test_report_runs_from_an_installed_wheel(tmp_path):
    # the sources to install: a copy, so that the build writes nothing into the checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src" / "figkd", source / "src" / "figkd", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env_dir = tmp_path / "venv"
    with_pip = not _pip_supports_python_option()
    venv.create(env_dir, system_site_packages=True, with_pip=with_pip)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip"] if with_pip else [sys.executable, "-m", "pip", "--python", str(python)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                           str(source)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr

    outside = tmp_path / "elsewhere"  # the working directory: no checkout, no configs/paper
    runs = outside / "runs"
    pair = {"dataset": "cifar100", "teacher": "resnet32x4", "teacher_ckpt": "t", "student": "resnet8x4"}
    _run(runs, "figkd-s0", 78.5, objective="figkd", **pair)
    _run(runs, "mlkd-s0", 77.0, objective="mlkd", lr=0.025, **pair)  # MLKD's own recipe: the generated configs
    _run(runs, "level2-s0", 77.9, objective=[{"term": "ce", "weight": 1.0},
                                            {"term": "figkd", "weight": 2.0, "level": 2}], **pair)

    # where `import figkd` finds the package (its __file__), without importing it (and torch)
    find = "import importlib.util; print(importlib.util.find_spec('figkd').origin)"
    where = subprocess.run([str(python), "-c", find], cwd=outside, capture_output=True, text=True, env=env)
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(env_dir), where.stdout + where.stderr  # the installed copy, not the checkout's
    assert (installed / "paper" / "reported_top1.csv").is_file()

    done = subprocess.run([str(env_dir / "bin" / "figkd"), "report", "runs"], cwd=outside, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    # the same report as this checkout's figkd gives: tables 1 and 11 with the paper's numbers beside ours
    assert done.stdout.rstrip("\n") == report(runs).rstrip("\n")
    assert "Table 1:" in done.stdout and "Table 11:" in done.stdout and "78.50 (n=1) / 78.05 (+0.45)" in done.stdout
