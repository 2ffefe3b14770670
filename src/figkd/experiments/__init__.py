"""figkd.experiments: many runs and their results - ``figkd sweep`` and ``figkd report``.

- :mod:`.sweep`: configs x seeds -> runs as separate processes, N at a time, teachers first
  (:func:`plan`, :func:`execute`); :mod:`.slurm`: the same runs as a Slurm job-array script.
- :mod:`.runs`: run directories found under a folder and what each is (:func:`collect_runs`,
  :func:`method_name`).
- :mod:`.paper`: the layouts of the paper's tables; :mod:`.report`: the tables filled from runs.
"""

from .report import report
from .runs import RunRecord, collect_runs, method_name, read_run
from .slurm import write_slurm_script
from .sweep import Outcome, Run, execute, plan, summarize

__all__ = ["Outcome", "Run", "RunRecord", "collect_runs", "execute", "method_name", "plan", "read_run", "report",
           "summarize", "write_slurm_script"]
