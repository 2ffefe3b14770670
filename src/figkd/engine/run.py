"""Build a run from configurations and execute it: the body of ``figkd train`` and ``figkd distill``.

The order is that of what each piece is built from: dataset -> teacher -> each student -> its
objective (built from a `figkd.losses.BuildContext`: class count, training-set size, input size,
both models' feature shapes, the teacher) -> the loaders (which yield what the objectives declare:
the strong view, the sample index). Everything that can be wrong with a configuration (unknown
model, dataset, objective or key, a missing dataset or checkpoint, a teacher whose class count
differs from the dataset's, a term that does not fit the pair) is found here, before the first
step, and raised as :class:`~figkd.config.ConfigError` (the CLI prints it on one line and exits
with status 2).

A configuration with ``peers`` (``figkd distill --peers A B``) is a deep-mutual-learning run: one member
per peer, in ``<out>/peer<i>-<arch>``, trained from scratch (no teacher needed), the peers initialised one
after another from one random stream seeded with ``seed`` (so that two peers of one architecture start
apart), each with its own optimizer and checkpoint; every peer directory records the whole run's
configuration, so its ``config.yaml`` runs (or resumes) the whole peer set again.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, milestones_warning
from ..errors import ConfigError, RunFileError
from . import distributed as dist_utils
from . import rundir
from .device import resolve_channels_last, resolve_cuda_graph, resolve_device
from .learner import build_learner
from .member import build_member
from .nonfinite import NonFiniteLossError
from .recipe import lr_warmup_warning, warmup_warning
from .rundir import RunDir, default_run_dir, member_name, objective_name, peer_dirs, run_dir_of  # noqa: F401
from .teacher import resolve_teacher_mode
from .trainer import Trainer

#: Fields that may differ between the members of one run (everything else is shared).
MEMBER_FIELDS = ("model", "student", "objective", "out", "lr")


def resolve(cfg: RunConfig, command: str) -> RunConfig:
    """Fill the command's defaults (objective) and check that the command has what it needs."""
    if command == "train":
        if cfg.peers:
            raise ConfigError("peers are trained together with figkd distill --peers A B (deep mutual learning)")
        if not cfg.model:
            raise ConfigError("figkd train needs --model (figkd models lists them)")
        if cfg.objective is None:
            cfg = cfg.replace(objective="vanilla")
    elif command == "distill" and cfg.peers:
        if cfg.student:
            raise ConfigError("figkd distill takes --student (distilled from a teacher) or --peers (trained together "
                              "from scratch), not both")
        if bool(cfg.teacher) != bool(cfg.teacher_ckpt):
            raise ConfigError("a teacher needs both --teacher and --teacher-ckpt (peers need no teacher)")
        if cfg.objective is None:
            cfg = cfg.replace(objective="dml")
    elif command == "distill":
        cfg = _teacher_from_run_dir(cfg)
        from ..models.hf import is_hf  # a Hugging Face teacher's weights may be its folder's (no --teacher-ckpt)
        missing = [f"--{k.replace('_', '-')}" for k in ("teacher", "teacher_ckpt", "student")
                   if not getattr(cfg, k) and not (k == "teacher_ckpt" and is_hf(cfg.teacher))]
        if missing == ["--teacher"]:
            raise _no_teacher_architecture(cfg.teacher_ckpt)
        if missing:
            raise ConfigError(f"figkd distill needs {', '.join(missing)}")
        if cfg.objective is None:
            cfg = cfg.replace(objective="figkd")
    else:
        raise ValueError(f"unknown command {command!r}")
    return cfg


def _no_teacher_architecture(path: str) -> ConfigError:
    """Why the teacher's architecture is not known from ``--teacher-ckpt`` alone (no ``--teacher``)."""
    fix = "name it with --teacher ARCH (teacher: ARCH in a config file)"
    target = Path(path)
    if not target.exists():
        return ConfigError(f"--teacher-ckpt {path} does not exist (yet), so the teacher's architecture cannot be read "
                           f"from it: pass an existing run directory, or {fix} - a sweep that trains the teacher "
                           "first needs it")
    if target.is_dir():
        return RunDir(target).missing_config(f"pass the teacher's run directory (the folder holding config.yaml), or "
                                             f"its weights file and {fix}")
    return ConfigError(f"--teacher-ckpt {path} is a weights file, which does not say its architecture: {fix}, or pass "
                       "the teacher's run directory")


def _teacher_from_run_dir(cfg: RunConfig) -> RunConfig:
    """When ``teacher_ckpt`` is a figkd run directory: the architecture it trained (`RunDir.architecture`:
    a train run's model, a distill run's student, a peer's own architecture) is the default ``teacher``, and
    a different ``teacher`` is a ConfigError naming both."""
    from ..models import canonical_name
    run_dir = RunDir(cfg.teacher_ckpt) if cfg.teacher_ckpt else None
    if run_dir is None or not run_dir.has_config():
        return cfg
    _check_teacher_run(cfg, run_dir)
    arch = run_dir.architecture  # a damaged config.yaml is a RunFileError
    if arch is None:
        return cfg
    if not cfg.teacher:
        return cfg.replace(teacher=arch)
    try:
        same = canonical_name(cfg.teacher) == canonical_name(arch)
    except ValueError:
        return cfg  # an unknown name: reported where the teacher is built
    if not same:
        raise ConfigError(f"--teacher {cfg.teacher}, but {run_dir.path} holds a {arch} (its config.yaml): pass "
                          f"--teacher {arch} or leave --teacher out")
    return cfg


def _check_teacher_run(cfg: RunConfig, run_dir: RunDir) -> None:
    """The teacher run ``run_dir`` was trained on this run's data (its config.yaml names them): another
    dataset is a ConfigError (its classes need not be this dataset's even when their count is), unless its
    weights file is given directly; the same dataset at another input size, or read from another folder, a
    warning (it can be meant: another resolution, a copy of the data moved); so is a teacher run that has not
    finished (stopped, diverged, or still training)."""
    from ..data import dataset_spec, recipe_for
    if not run_dir.finished and run_dir.last_epoch() is not None:
        why = run_dir.error_log()
        warnings.warn(f"the teacher run {run_dir.path} has not finished (its last checkpoint is epoch "
                      f"{run_dir.last_epoch()} of {run_dir.config().get('epochs')}"
                      + (f"; it stopped: {why}" if why else "") + "): its best weights so far are used", stacklevel=3)
    theirs = run_dir.dataset
    if not theirs or theirs == cfg.dataset:
        root = run_dir.data_root
        if theirs and root and cfg.data_root and rundir.normalized({"data_root": cfg.data_root})["data_root"] != root:
            warnings.warn(f"the teacher {run_dir.path} was trained on {theirs} in {root}, and this run reads "
                          f"{cfg.data_root}: if these are different image sets, the teacher's classes are not "
                          "this run's", stacklevel=3)
        return
    try:
        same_family = dataset_spec(theirs).family == dataset_spec(cfg.dataset).family
        sa, sb = recipe_for(theirs).size, recipe_for(cfg.dataset).size
    except ValueError:  # a dataset this version of figkd does not know: the names differ, so does the data
        same_family = False
    if same_family:
        warnings.warn(f"the teacher {run_dir.path} was trained on {theirs} ({sa}x{sa} images) and this run is on "
                      f"{cfg.dataset} ({sb}x{sb}): it sees images of another size than it learned", stacklevel=3)
        return
    best = run_dir.checkpoints.dir / "best.safetensors"
    raise ConfigError(f"the teacher {run_dir.path} was trained on {theirs} (its config.yaml) and this run is on "
                      f"{cfg.dataset}: its outputs are the classes of {theirs}; distil with --dataset {theirs}, or, "
                      f"to use it anyway (the same classes stored another way), pass its weights file: "
                      f"--teacher-ckpt {best}")


def _build_model(name: str, num_classes: int, input_size: tuple[int, int], log) -> torch.nn.Module:
    """Model ``name`` for ``num_classes`` classes, checked against the contract of a model from outside the
    zoo at ``input_size`` (`figkd.models.check_contract`); what its build did (a Hugging Face model's weights
    and input) is logged. ConfigError for an unknown name or a model that does not meet the contract."""
    from ..models import build_model, build_notes, check_contract
    try:
        model = build_model(name, num_classes)
        check_contract(model, input_size, num_classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    for line in build_notes(model):
        log(line)
    return model


def _weights_file(path: str, flag: str) -> str:
    """The weights file that ``flag`` (``--teacher-ckpt``, ``--init``) names: the file itself, or a figkd run
    directory's best weights. ConfigError for a missing path, a folder that is not a run directory (naming
    the runs below it), or a run without best weights yet."""
    target = Path(path)
    if target.is_file():
        return path
    if not target.exists():
        raise ConfigError(f"{flag} {path}: no such file or folder (a figkd run directory, a safetensors file or a "
                          "PyTorch state dict)")
    run_dir = RunDir(target)
    if not run_dir.has_config():
        raise run_dir.missing_config("pass a run directory or a weights file")
    best = run_dir.checkpoints.dir / "best.safetensors"
    if not best.is_file():
        raise ConfigError(f"{flag} {path}: the run directory has no checkpoints/best.safetensors yet (no epoch has "
                          "finished): train it first, or pass a weights file")
    return str(best)


def _load_teacher(cfg: RunConfig, num_classes: int, log) -> torch.nn.Module:
    """The teacher with its weights (``teacher_ckpt``; a Hugging Face teacher without one: its folder's, whose
    head must then have the dataset's classes), checked against the model contract, in eval mode."""
    from ..models import build_notes, check_contract, load_teacher
    if not cfg.teacher_ckpt:  # hf:<folder>: its own weights (resolve lets nothing else through)
        teacher = _build_model(cfg.teacher, num_classes, _input_size(cfg), partial(_tagged, log, "teacher")).eval()
        if teacher.loading.get("reinitialised"):
            raise ConfigError(f"teacher {cfg.teacher}: its head has {teacher.loading['pretrained_classes']} classes, "
                              f"the dataset {num_classes}; a teacher needs a trained head: fine-tune it first (figkd "
                              f"train --model {cfg.teacher} ...) and pass --teacher-ckpt RUN_DIR")
        return teacher
    try:
        teacher = load_teacher(cfg.teacher, _weights_file(cfg.teacher_ckpt, '--teacher-ckpt'), num_classes)
        check_contract(teacher, _input_size(cfg), num_classes)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
        raise ConfigError(f"teacher {cfg.teacher} from {cfg.teacher_ckpt}: {exc}") from exc
    for line in build_notes(teacher, weights=False):  # its input handling (the weights are the checkpoint's)
        log(f"[teacher] {line}")
    return teacher


@dataclass(frozen=True)
class _Splits:
    """What a run reads: the samples it trains on, those it evaluates on every epoch (the test split, or
    with ``val_fraction`` the validation split held out of the training split) and that split's record."""

    train: Any
    eval: Any
    eval_name: str  # "test" or "val"
    validation: Any = None  # figkd.data.split.ValidationSplit


def _build_split(cfg: RunConfig, train: bool, log):
    """The training (``train``) or test split of the run's dataset; the log names unreadable images skipped."""
    from ..data import build_dataset, check_dataset_name
    check_dataset_name(cfg.dataset)
    split = build_dataset(cfg.dataset, cfg.data_root, train=train, skip_corrupt=cfg.skip_corrupt)
    if getattr(split, "skipped", None):
        log(f"skipped {len(split.skipped)} unreadable images of the {'train' if train else 'test'} split "
            f"(skip_corrupt), e.g. {split.skipped[0]}")
    return split


def _datasets(cfg: RunConfig, entries: list[_Entry], overwrite: bool, log) -> _Splits:
    """The splits of the run (each read once; the loaders are built on them). With ``val_fraction`` the
    test split is not read: the validation split is the one recorded in a member's run directory (kept on
    resume, `RunDir.validation`), else drawn now (`figkd.data.split`)."""
    train = _build_split(cfg, True, log)
    if not cfg.val_fraction:
        return _Splits(train, _build_split(cfg, False, log), "test")
    from ..data.split import ValidationSplit, split_dataset

    stored = [] if overwrite else [e.run_dir.validation() for e in entries if e.run_dir.path.is_dir()]
    split = next((v for v in stored if v is not None and v.fits(cfg.val_fraction, cfg.val_seed, len(train))), None)
    if split is None:
        split = ValidationSplit.draw(train.targets, cfg.val_fraction, cfg.val_seed, name=cfg.dataset)
    kept, held = split_dataset(train, split)
    log(f"validation split: {len(held)} of the {len(train)} training images (val_fraction {cfg.val_fraction:g}, "
        f"stratified, val_seed {cfg.val_seed}; sha256 {split.sha256[:12]}{', as recorded' if split in stored else ''})"
        f"; training on the other {len(kept)}; the test split is not read")
    return _Splits(kept, held, "val", split)


def _input_size(cfg: RunConfig) -> tuple[int, int]:
    from ..data import recipe_for
    size = recipe_for(cfg.dataset).size
    return (size, size)


def _loaders(cfg: RunConfig, splits: _Splits, device: torch.device, strong_view: bool, info: dist_utils.DistInfo,
             norm=None):
    """The training loader and the loader of the split evaluated every epoch."""
    train = build_loader_of(cfg, splits.train, True, device, info, norm, strong_view=strong_view)
    return train, build_loader_of(cfg, splits.eval, False, device, info, norm)


def build_loader_of(cfg: RunConfig, dataset, train: bool, device: torch.device, info: dist_utils.DistInfo, norm,
                    *, strong_view: bool = False):
    """A loader of ``dataset`` (a split, or part of one) with the run's recipe and normalisation."""
    from ..data import build_loader
    return build_loader(cfg.dataset, cfg.data_root, train, cfg.batch_size if train else cfg.eval_batch_size,
                        strong_view=strong_view, dataset=dataset, device=device, seed=cfg.seed, rank=info.rank,
                        world_size=info.world_size, num_workers=cfg.num_workers, cache_dir=cfg.cache_dir,
                        mean=norm.mean if norm else None, std=norm.std if norm else None,
                        max_steps=cfg.steps_per_epoch if train else None)


def _check_shared(configs: list[RunConfig]) -> None:
    first = configs[0].to_dict()
    for other in configs[1:]:
        d = other.to_dict()
        diff = [k for k in first if k not in MEMBER_FIELDS and first[k] != d[k]]
        if diff:
            raise ConfigError(f"the students of one run must share {', '.join(diff)}")


def run(configs: list[RunConfig] | RunConfig, command: str, *, resume: bool = False,
        overwrite: bool = False, log=print, on_epoch_end=None) -> list[dict[str, Any]]:
    """Train (``command="train"``) or distil (``"distill"``) every configuration in one run.

    Several configurations (differing only in student, objective, lr or out) share one teacher
    forward per step and the same batches. Returns one summary dict per member; a member whose
    run directory holds the same finished run is skipped and its stored summary returned.

    ``on_epoch_end(member, epoch, record) -> str | None``: called after each epoch has been recorded, for
    each member (`figkd.engine.member.Member`; ``record``: the epoch's metrics, as ``metrics.jsonl`` holds
    them); a string stops the run after this epoch, with that reason in every member's summary
    (``stopped``: `RunDir.stopped`). ``figkd tune`` prunes trials with it. Under DDP it runs on rank 0 and
    its decision is given to every rank.
    """
    if isinstance(configs, RunConfig):
        configs = [configs]
    configs = [resolve(c, command) for c in configs]
    _check_shared(configs)
    cfg = configs[0]
    info = dist_utils.from_environment()
    if not info.is_main:
        log = _silent
    device = resolve_device(cfg.device, info)
    resolve_cuda_graph(cfg, device, info)  # refuses an impossible cuda_graph=on before any run directory
    dist_utils.init(info, device)
    try:
        return _run(configs, command, cfg, info, device, resume, overwrite, log, on_epoch_end)
    finally:
        dist_utils.shutdown()


def _silent(*args: Any, **kwargs: Any) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


def _tagged(log, name: str, line: str) -> None:
    log(f"[{name}] {line}")


@dataclass(frozen=True)
class _Entry:
    """One member-to-be of a run: its config, run directory, architecture, name and peer index."""

    cfg: RunConfig
    run_dir: RunDir
    architecture: str
    name: str
    peer: int | None = None


def _run(configs, command, cfg, info, device, resume, overwrite, log, on_epoch_end=None):
    if cfg.cache_dir and info.enabled:  # one process fills the cache, the others wait and read it
        from ..data import prepare_cache
        if info.is_main:
            for train in (True, False) if not cfg.val_fraction else (True,):
                prepare_cache(cfg.dataset, cfg.data_root, train, cfg.cache_dir)
        dist_utils.barrier()
    entries = _entries(configs, command)
    splits = _datasets(cfg, entries, overwrite, log)
    from ..data import normalization  # mean/std of the config (auto: computed once, kept in the run directory)
    stored = [] if overwrite else [e.run_dir.stored_normalization() for e in entries if e.run_dir.path.is_dir()]
    norm = normalization.resolve(cfg.mean, cfg.std, cfg.dataset, splits.train, stored=stored,
                                 cache_dir=cfg.cache_dir, log=log)
    teacher = _load_teacher(cfg, splits.train.num_classes, log) if command == "distill" and cfg.teacher else None
    learners = [_learner(e, i, command, teacher, splits.train, log) for i, e in enumerate(entries)]
    teacher_mode = None
    if teacher is not None:
        teacher_mode = resolve_teacher_mode(cfg.teacher_mode, [learner.objective for learner in learners])
        if info.enabled and teacher_mode == "train":  # batch statistics over every process, as the students'
            teacher = dist_utils.convert_batchnorm(teacher)
    # The loaders before any run directory is touched: a data problem (a batch larger than the split, an
    # image that cannot be decoded) is reported with nothing written.
    strong = any(learner.needs.strong() for learner in learners)
    train_loader, eval_loader = _loaders(cfg, splits, device, strong, info, norm)
    from ..models import set_input_normalization  # what the loader normalises with (a Hugging Face model converts)
    for model in [teacher, *(learner.model for learner in learners)]:
        if model is not None:
            set_input_normalization(model, train_loader.recipe.mean, train_loader.recipe.std)
    try:  # each run directory is locked from its start (RunDir.prepare) to here
        return _train(entries, learners, command, cfg, teacher=teacher, teacher_mode=teacher_mode, norm=norm,
                      splits=splits, device=device, info=info, loaders=(train_loader, eval_loader), resume=resume,
                      overwrite=overwrite, on_epoch_end=on_epoch_end, log=log)
    finally:
        for entry in entries:
            entry.run_dir.unlock()


def _train(entries, learners, command, cfg, *, teacher, teacher_mode, norm, splits: _Splits, device, info, loaders,
           resume, overwrite, on_epoch_end, log):
    """Start every entry's member (`_start`) and train those not finished yet; the summaries, in order."""
    members, done = [], []
    for entry, learner in zip(entries, learners, strict=True):
        member = _start(entry, learner, command, teacher=teacher, teacher_mode=teacher_mode, norm=norm,
                        classes=splits.train.classes, validation=splits.validation, device=device, info=info,
                        resume=resume, overwrite=overwrite, log=log)
        (done if isinstance(member, dict) else members).append(member)
    if not members:
        return done
    said = [milestones_warning(cfg), lr_warmup_warning(cfg)]
    said += [warmup_warning(cfg.epochs, m.learner.objective.spec, m.name) for m in members]
    for warning in filter(None, said if info.is_main else []):  # said as training starts, not before an error
        warnings.warn(warning, stacklevel=4)
    if cfg.peers and done:
        raise ConfigError(f"the peers of {entries[0].run_dir.path.parent} are in different states (some finished, "
                          "some not): they train together; remove the unfinished ones' directories or use --overwrite")
    schedule = loaders[0].schedule
    if schedule.steps < schedule.full_steps:
        log(f"steps_per_epoch {cfg.steps_per_epoch}: each epoch trains the first {schedule.steps} of its "
            f"{schedule.full_steps} steps (a trial, not a full run)")
    trainer = Trainer(cfg, members, *loaders, teacher=teacher, device=device, info=info, log=log,
                      eval_split=splits.eval_name, on_epoch_end=on_epoch_end)
    try:
        summaries = trainer.fit()
    except NonFiniteLossError as error:  # the members that finished are kept, and said
        error.summaries = done + error.summaries
        raise
    if splits.validation is not None and cfg.test_at_end:
        summaries = _test_at_end(cfg, trainer, summaries, norm, log)
    return done + summaries


def _test_at_end(cfg: RunConfig, trainer: Trainer, summaries: list[dict[str, Any]], norm, log) -> list[dict[str, Any]]:
    """``test_at_end``: the final weights of each member that trained to its last epoch evaluated on the test
    split, once (the summary's ``last_top1``/``last_top5``/``last_loss``, rewritten)."""
    finished = [(m, s) for m, s in zip(trainer.members, summaries, strict=True) if not s.get("stopped")]
    if not finished:
        return summaries
    test = _build_split(cfg, False, log)
    loader = build_loader_of(cfg, test, False, trainer.device, trainer.info, norm)
    for m, summary in finished:
        ev = trainer.evaluate(m, loader)
        summary.update(last_top1=ev["test/top1"], last_top5=ev["test/top5"], last_loss=ev["test/loss"])
        log(f"[{m.name}] test top-1 of the final weights (test_at_end): {ev['test/top1']:.2f}")
        if trainer.info.is_main:
            m.run_dir.write_summary(summary)
    return summaries


def _entries(configs: list[RunConfig], command: str) -> list[_Entry]:
    """The members-to-be of a run: one per config, or one per peer of a peers run (each in
    ``<out>/peer<i>-<arch>``, all recording the peers run's config)."""
    run_dirs = [run_dir_of(c, command) for c in configs]
    if len(set(run_dirs)) != len(run_dirs):
        raise ConfigError("the students of one run need distinct run directories")
    cfg = configs[0]
    if cfg.peers and len(configs) > 1:
        raise ConfigError("a peers run (--peers) is one configuration: run other students separately")
    if cfg.peers:
        return [_Entry(cfg.replace(out=str(run_dirs[0])), RunDir(d), rundir.model_path(arch), d.name, i)
                for i, (d, arch) in enumerate(zip(peer_dirs(cfg, run_dirs[0]), cfg.peers, strict=True))]
    return [_Entry(c.replace(out=str(d)), RunDir(d), rundir.model_path(c.model if command == "train" else c.student),
                   member_name(c, command)) for c, d in zip(configs, run_dirs, strict=True)]


def _learner(entry: _Entry, index: int, command: str, teacher, train_split, log):
    """The entry's student and objective as one Learner. Every member starts from the same random stream
    (seeded with the config's seed), except peers, which continue one stream (different initialisations);
    the objective's modules continue it too. With ``init``, the student's weights then come from that file
    (`figkd.models.init_from`: another head re-initialised), and what was loaded is logged."""
    c = entry.cfg
    if index == 0 or not c.peers:
        torch.manual_seed(c.seed)
    num_classes = train_split.num_classes
    model = _build_model(entry.architecture, num_classes, _input_size(c), partial(_tagged, log, entry.name))
    if c.init:
        from ..models import init_from
        log(f"[{entry.name}] {init_from(model, _weights_file(c.init, '--init')).line()}")
    with warnings.catch_warnings(record=True) as said:  # said once the objective is known to fit the command
        warnings.simplefilter("always")
        learner = build_learner(model, c.objective, teacher=teacher,
                                num_classes=num_classes, input_size=_input_size(c), train_size=len(train_split),
                                train_targets=train_split.targets, seed=c.seed)
    if command == "train" and learner.needs.teacher:
        raise ConfigError("figkd train trains a model alone: its objective must not need a teacher (use figkd distill)")
    if learner.needs.peers and not c.peers:
        raise ConfigError(f"objective {objective_name(c.objective)!r} reads the other peers' logits (deep mutual "
                          "learning): train the peers together with figkd distill --peers A B")
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return learner


def _start(entry: _Entry, learner, command: str, *, teacher, teacher_mode, norm, classes, validation, device, info,
           resume: bool, overwrite: bool, log):
    """Prepare the entry's run directory (`RunDir.prepare`) and build its member; the stored summary instead
    when the directory already holds this finished run. ``classes``: the dataset's class names, kept in the
    run directory (``classes.json``) for what is made of the run later (`figkd.deploy`'s ONNX metadata)."""
    from ..models import describe_model
    rec = rundir.record(entry.cfg, command, architecture=entry.architecture, objective=learner.objective.spec,
                        world_size=info.world_size, peer=entry.peer, teacher_mode=teacher_mode,
                        models={"architecture": describe_model(learner.model), "teacher": describe_model(teacher)})
    run_dir = entry.run_dir
    status = dist_utils.decide_on_main(partial(run_dir.prepare, rec, resume=resume, overwrite=overwrite))
    if status == "done":
        log(f"[{entry.name}] {run_dir.path} already holds this finished run: skipped")
        return run_dir.summary()
    note = run_dir.world_size_note(rec) if status == "resume" else None
    if note:
        log(f"[{entry.name}] {note}")
    if info.enabled:
        learner = dist_utils.convert_batchnorm(learner)
    if info.is_main:
        run_dir.write_config(rec)
        run_dir.write_normalization(norm)
        run_dir.write_classes(classes)  # the class names of the model's outputs (figkd export's metadata)
        run_dir.write_validation(validation)
    return build_member(entry.name, entry.architecture, objective_name(entry.cfg.objective), learner, run_dir,
                        entry.cfg, device=device, info=info, channels_last=resolve_channels_last(entry.cfg, device),
                        teacher=teacher, resume=status == "resume", log=log)


# ------------------------------------------------------------------------------ after a stop
def _member_dirs(configs: list[RunConfig], command: str) -> list[tuple[RunDir, dict[str, Any]]]:
    """Each member's run directory and record (its objective as it resolves; world size from the
    environment); none for configs the engine would refuse."""
    info = dist_utils.from_environment()
    out = []
    try:
        for c in (resolve(c, command) for c in configs):
            if c.peers:
                base = run_dir_of(c, command)
                out += [(RunDir(d), rundir.record(c, command, architecture=rundir.model_path(arch),
                                                  world_size=info.world_size, peer=i,
                                                  objective=rundir.resolved_terms(c.objective)))
                        for i, (d, arch) in enumerate(zip(peer_dirs(c, base), c.peers, strict=True))]
            else:
                arch = rundir.model_path(c.model if command == "train" else c.student)
                out.append((RunDir(run_dir_of(c, command)),
                            rundir.record(c, command, architecture=arch, world_size=info.world_size,
                                          objective=rundir.resolved_terms(c.objective))))
    except (ConfigError, ValueError):
        return []
    return out


def resume_note(configs: list[RunConfig], command: str) -> str:
    """Where the run of ``configs`` stands after a stop: the epoch interrupted, the last checkpoint and
    what to do (one phrase, for the messages of Ctrl-C and of a failed write)."""
    lasts = []
    try:
        for run_dir, rec in _member_dirs(configs, command):
            if not run_dir.has_config() or rundir.differences(run_dir.config(), rec):
                continue  # not started (another run's directory, or nothing written yet)
            if run_dir.finished:
                continue
            lasts.append(run_dir.last_epoch())
    except RunFileError as error:
        return f"and the run directory cannot be read ({error})"
    if not lasts:
        return "before training started; nothing was written that needs --resume"
    if any(k is None for k in lasts):
        return "in epoch 1, before its checkpoint; run the command again (nothing to resume)"
    last = min(lasts)
    return f"in epoch {last + 1}; the last checkpoint is epoch {last}; continue with --resume"


def interrupted_message(configs: list[RunConfig], command: str) -> str:
    """The one line printed for Ctrl-C: ``interrupted in epoch E; the last checkpoint is epoch K; ...``."""
    return f"interrupted {resume_note(configs, command)}"
