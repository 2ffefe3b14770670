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


def test_quick_start_is_two_commands_after_the_clone_and_the_manual_steps_follow():
    blocks = [b.splitlines() for b in re.findall(r"```bash\n(.*?)```", _section("Quick start"), re.S)]
    assert blocks[0][0].startswith("git clone ") and blocks[0][0].endswith("&& cd figkd")
    assert blocks[0][1:] == ["make demo", "make test"]
    assert blocks[1] == ["python3 -m venv .venv && . .venv/bin/activate",
                         "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
                         "pip install -e .", "figkd demo"]
    assert blocks[2] == ['pip install -e ".[dev]" && python -m pytest -q']
    makefile = (README.parent / "Makefile").read_text()
    assert "TORCH_VERSION ?= 2.13.0" in makefile
    assert "TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu" in makefile
    assert "$(BIN)/python -m pytest -q" in makefile and "$(BIN)/figkd demo" in makefile
    assert (README.parent / ".ci" / "run").read_text().rstrip().endswith("exec make test")
