"""figkd.tune: hyperparameter search on a validation split, with Optuna (``figkd tune``; docs/tuning.md).

- `figkd.tune.space`: ``--param KEY=SPEC`` on any config key or a term's option (``objective.figkd.weight``);
- `figkd.tune.storage`: where a study lives (Optuna's journal file, or a database URL) and the heartbeat that
  finds a killed worker's trial and queues it again;
- `figkd.tune.study`: the study folder, its definition, and the worker loop (each trial an ordinary run
  directory, pruned by Optuna through the engine's ``on_epoch_end``);
- `figkd.tune.results`: the report (best trials, best config, importances, figures) and ``--final``;
- `figkd.tune.cli`: the command.

Optuna is the optional extra ``tune`` (``pip install 'figkd[tune]'``): this package imports it only in the
modules above but ``space`` and ``cli``, which the command line loads first.
"""
