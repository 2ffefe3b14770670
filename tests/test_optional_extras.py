"""figkd without its optional extras (``pip install figkd``, what ``make demo`` and the README's manual set-up
install): every command starts, and only the commands that need an extra refuse, on one line naming the pip
command. The extras are hidden from a fresh interpreter (``sys.modules[name] = None``: the ImportError an
environment without them gives), so the modules the other tests imported do not mask a top-level import.
(A new-user trial found ``figkd --help`` and every other command failing with a traceback without Optuna.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
#: The modules of the extras hf (transformers), deploy (onnx, onnxscript, onnxruntime) and tune (optuna).
EXTRAS = ("optuna", "onnx", "onnxscript", "onnxruntime", "transformers")

SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    for name in {extras!r}:
        sys.modules[name] = None
    from figkd.cli import main
    results = {{}}
    for argv in {argvs!r}:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit:  # --help
                code = exit.code
        results[" ".join(argv)] = [code, err.getvalue()]
    print(json.dumps(results))
""")


def test_every_command_starts_without_the_optional_extras_and_those_needing_one_name_it(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: digits\nmodel: resnet8\n")
    (tmp_path / "my-vit").mkdir()
    (tmp_path / "my-vit" / "config.json").write_text("{}")  # a Hugging Face folder (the check before the import)
    argvs = [["--help"], ["train", "--help"], ["models"], ["tune", "--help"], ["export", "--help"],
             ["tune", str(tmp_path / "c.yaml"), "--param", "lr=float:0.01:0.1", "--study", str(tmp_path / "s")],
             ["export", str(tmp_path)], ["eval", str(tmp_path / "model.onnx")],
             ["train", "--model", f"hf:{tmp_path / 'my-vit'}", "--dataset", "digits", "--out", str(tmp_path / "r")]]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(extras=EXTRAS, argvs=argvs)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for argv in argvs[:5]:
        assert results[" ".join(argv)] == [0, ""], argv
    refused = {key: results[" ".join(argv)] for key, argv in zip(("tune", "deploy", "deploy", "hf"), argvs[5:],
                                                                 strict=True)}.items()
    for extra, (code, err) in refused:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"figkd[{extra}]" in err.replace("'", ""), err
