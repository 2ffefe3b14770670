"""Are two folders of runs bit-identical? Every ``*.safetensors`` file under ``A`` against the same file under ``B``.

    python benchmarks/compare_weights.py A B [--json FILE]

The check behind "behaviour stays as it is" when the engine is restructured: run the same command with the code
before and after (e.g. ``figkd demo --epochs 2 --device cpu --out A`` on the old commit, ``--out B`` on the new)
and compare every checkpoint's tensors with ``torch.equal``. Prints one line per file and a total; exits 1 when a
file differs or is missing on one side; ``--json`` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def compare(a: Path, b: Path) -> list[dict]:
    """One record per weights file of either folder: its path, tensor and value counts, and ``identical``."""
    names = sorted({p.relative_to(root) for root in (a, b) for p in root.rglob("*.safetensors")})
    out = []
    for rel in names:
        if not (a / rel).is_file() or not (b / rel).is_file():
            out.append({"file": str(rel), "identical": False, "why": f"only in {a if (a / rel).is_file() else b}"})
            continue
        x, y = load_file(str(a / rel)), load_file(str(b / rel))
        same = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        out.append({"file": str(rel), "identical": same, "tensors": len(x),
                    "values": sum(v.numel() for v in x.values())})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--json", type=Path, help="also write the records as JSON")
    args = parser.parse_args(argv)
    records = compare(args.a, args.b)
    if not records:
        print(f"no .safetensors files under {args.a} or {args.b}", file=sys.stderr)
        return 1
    for r in records:
        detail = f"({r['values']} values)" if "values" in r else f"({r['why']})"
        print(f"{'identical' if r['identical'] else 'DIFFERENT'} {r['file']} {detail}")
    same = sum(r["identical"] for r in records)
    print(f"{same}/{len(records)} files bit-identical")
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "files": records}, indent=1) + "\n")
    return 0 if same == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
