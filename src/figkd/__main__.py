"""``python -m figkd`` (also what ``torchrun -m figkd`` runs)."""

import sys

from .cli import main

sys.exit(main())
