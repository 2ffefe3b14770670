"""The plugin template of docs/method.md §6 works when copied as written into a file of its own, and a plugin
written with the package's relative imports gets an error that names the fix (issue 27, item 12)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from figkd.plugins import load_plugins

ROOT = Path(__file__).resolve().parents[1]


def _template() -> str:
    text = (ROOT / "docs" / "method.md").read_text()
    section = text.split("## 6. Adding a method", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_template_of_docs_method_6_runs_as_a_plugin_file(tmp_path):
    # the template's body is "..." (the formula is the method's): a KD stands in for it
    code = _template().replace("    ...\n", "    return (student_logits - teacher_logits).square().mean() "
                                           "* temperature\n", 1)
    (tmp_path / "mykd.py").write_text(code)
    script = ("import torch; from figkd.plugins import load_plugins; load_plugins('mykd.py'); "
              "from figkd.losses import build_objective; "
              "o = build_objective([{'term': 'mykd', 'temperature': 2.0}], num_classes=10); "
              "s, t = torch.ones(2, 10), torch.zeros(2, 10); "
              "print(float(o(student_logits=s, teacher_logits=t)['total']))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == 2.0


def test_relative_imports_in_a_plugin_file_name_the_fix(tmp_path):
    (tmp_path / "relkd.py").write_text("from .registry import register_term\n")
    with pytest.raises(Exception, match=r"cannot import '.*relkd.py' \(ImportError: attempted relative import .*\): "
                                        r"a plugin file is imported on its own, not as part of figkd: import from "
                                        r"figkd by its full name, e.g. from figkd.losses import register_term"):
        load_plugins(str(tmp_path / "relkd.py"))
