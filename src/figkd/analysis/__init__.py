"""figkd.analysis: the analyses the paper draws its conclusions from, one module each.

Each reads run directories (their config names the model, dataset and checkpoint), runs on CPU or GPU,
and writes a PNG (matplotlib) and a JSON of the numbers into ``RUN_DIR/analysis/`` or ``out``:

- :func:`hf_accuracy` (Fig. 2): top-1 from the high-frequency logits only vs the full logits;
- :func:`spectrum` (Fig. 5): logit grids and their low/high-frequency reconstructions, subband energies;
- :func:`tsne` (Fig. 6): t-SNE of the students' penultimate embeddings;
- :func:`predictions` (Fig. 1): disagreements of teacher, KD and FiGKD students, most confused class pairs;
- :func:`overhead` (Table 14): time per training step of KD and FiGKD at J = 1, 2, 3;
- :func:`sensitivity` (Fig. 4): top-1 against the CE and detail weights of Eq. 7.

The command line: ``figkd analyze <name> ...`` (docs/analysis.md).
"""

from .frequency import decompose, subband_energy
from .hf_accuracy import hf_accuracy
from .overhead import overhead
from .predictions import predictions
from .sensitivity import sensitivity
from .spectrum import spectrum
from .tsne import tsne

__all__ = ["decompose", "hf_accuracy", "overhead", "predictions", "sensitivity", "spectrum", "subband_energy",
           "tsne"]
