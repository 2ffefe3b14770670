"""The README's code runs as pasted (issue 15, section 6)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_own_training_loop_snippet_runs_as_pasted():
    blocks = re.findall(r"```python\n(.*?)```", _section("FiGKD in your own training loop"), re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    loss = namespace["loss"]
    assert loss.ndim == 0 and loss.isfinite() and namespace["student_logits"].grad is not None


def test_quick_start_installs_the_cpu_build_in_a_virtual_environment():
    commands = re.findall(r"```bash\n(.*?)```", _section("Quick start"), re.S)[0].splitlines()
    assert commands[0].startswith("git clone ") and commands[0].endswith("&& cd figkd")
    assert commands[1] == "python3 -m venv .venv && . .venv/bin/activate"
    assert commands[2] == "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    assert commands[3:] == ["pip install -e .", "figkd demo"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and "TORCH_INDEX_URL" in ci
