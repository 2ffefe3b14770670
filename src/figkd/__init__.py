"""figkd: frequency-aware knowledge distillation.

The reference implementation of FiGKD (Fine-Grained Knowledge Distillation via High-Frequency
Detail Transfer, S. Kim, Expert Systems with Applications 2026, arXiv 2505.11897) and the methods,
models, datasets and training recipe it is compared with.
"""

__version__ = "0.1.0"
