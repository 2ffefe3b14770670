#!/usr/bin/env python
"""Write every config of ``configs/paper/`` from the paper's reported numbers and ablation definitions.

    python configs/paper/generate.py            # rewrites configs/paper/{teachers,students,table*,fig4}/
    python configs/paper/generate.py --out DIR  # writes the same tree under DIR (the test compares)

The generator is ``figkd.experiments.paper_configs`` and the paper's numbers are ``figkd.paper`` (package data,
installed with figkd: ``figkd report`` reads both), imported here from this checkout's ``src``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))  # this checkout's figkd, whichever is installed

from figkd.experiments.paper_configs import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(default_out=HERE))
