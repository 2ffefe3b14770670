"""Run configuration: one flat dataclass whose defaults are the paper's recipe.

Every field can be set from a YAML file (``--config``), from a dedicated command-line flag
(``--epochs 10``) or with ``--set key=value`` (the value is parsed as YAML, so ``--set
lr_milestones=[30,60]`` and ``--set objective=kd`` both work). Later sources override earlier
ones: defaults < YAML file < flags < ``--set``. The resolved configuration is written to the run
directory as ``config.yaml`` and is what ``--resume`` compares against.

Sources of the defaults: the paper, Section 4.2 ("SGD with a momentum of 0.9 and a weight decay of
[number lost in the text extraction] ... 240 epochs with a batch size of 64. The initial learning
rate is set to 0.05, except for ShuffleNet-V1/V2 and MobileNet-V2, which use 0.01 ... decayed by a
factor of 0.1 at epochs 150, 180, and 210"), which is also mdistiller's CIFAR-100 recipe. The weight
decay 5e-4 is mdistiller's value (``SOLVER.WEIGHT_DECAY: 0.0005`` in its ``configs/cifar100/*.yaml``;
its ``mdistiller/engine/cfg.py`` default is 1e-4), not a number the paper's text gives. The default
learning rate is a property of the model (``figkd.models.default_lr``, from its registry entry).
"""

from __future__ import annotations

import codecs
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .checks import (
    Bool,
    Check,
    Choice,
    Device,
    Float,
    Int,
    IntList,
    Normalisation,
    Objective,
    Optional,
    Peers,
    Str,
    did_you_mean,
)
from .errors import ConfigError


def _f(default: Any, help: str, *, check: Check, **kwargs: Any) -> Any:
    """A RunConfig field: its default, its ``--help`` text and its ``check`` (type and range), the one
    declaration every construction of a RunConfig is validated against (``RunConfig.__post_init__``)."""
    meta = {"help": help, "check": check, **kwargs}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: yaml.safe_load(yaml.safe_dump(d)), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Everything a ``train`` or ``distill`` run needs. Field docs are the ``--help`` text."""

    # What to train on and with.
    dataset: str = _f("digits", "dataset name (figkd.data.list_datasets())", check=Str())
    data_root: str | None = _f(None, "folder holding the dataset in its official layout", check=Optional(Str()))
    model: str | None = _f(None, "model to train alone (figkd train): a zoo name (figkd models), one of "
                           "register_model (FIGKD_PLUGINS) or hf:<folder or hub id>", check=Optional(Str()))
    teacher: str | None = _f(None, "teacher architecture (figkd distill); hf:<folder> needs no teacher_ckpt when "
                             "its head fits the dataset", check=Optional(Str()))
    teacher_ckpt: str | None = _f(None, "teacher weights: figkd .safetensors or mdistiller/RepDistiller .pth",
                                    check=Optional(Str()))
    student: str | None = _f(None, "student architecture (figkd distill)",
                               check=Optional(Str(hint=" (several students: figkd distill --student A B)")))
    peers: list | None = _f(None, "architectures trained together from scratch by deep mutual learning (figkd "
                            "distill --peers A B; objective dml), each in <out>/peer<i>-<arch>",
                            check=Optional(Peers()))
    init: str | None = _f(None, "initial weights of the model (train) or student(s) (distill): a safetensors file "
                          "or PyTorch state dict; a classifier of another class count is re-initialised",
                          check=Optional(Str()))
    mean: Any = _f(None, "normalisation mean per channel: null (the dataset recipe's), a number, a list of 3, "
                   "or auto (the training split's own, computed once, kept in the run directory)",
                   check=Normalisation())
    std: Any = _f(None, "normalisation std per channel: null (the recipe's), a number, a list of 3, or auto",
                  check=Normalisation())
    objective: Any = _f(None, "loss: a preset or a term list (presets and terms: figkd distill --help); "
                        "default vanilla for train, figkd for distill", check=Optional(Objective()))
    teacher_mode: str = _f("auto", "the teacher's mode while distilling: auto (eval, or train where a term's "
                           "official code runs it so: OFD), eval (BatchNorm running statistics) or "
                           "train (batch statistics; its running statistics move and are checkpointed)",
                           check=Choice(("auto", "eval", "train")))
    # The recipe (paper Section 4.2).
    epochs: int = _f(240, "training epochs (paper: 240)", check=Int(min=1))
    steps_per_epoch: int | None = _f(None, "at most this many training steps per epoch, for a quick trial on real "
                                     "data (each epoch's first steps of its shuffled pass); null: the whole "
                                     "training split", check=Optional(Int(min=1)))
    batch_size: int = _f(64, "training batch size per process (paper: 64)", check=Int(min=1))
    lr: float | None = _f(None, "initial learning rate; default: the model's (registry default_lr: 0.05, "
                          "0.01 for ShuffleNet-V1/V2 and MobileNet-V2; paper Section 4.2)",
                          check=Optional(Float(min=0, min_open=True)))
    momentum: float = _f(0.9, "SGD momentum (paper: 0.9)", check=Float(min=0, max=1, max_open=True))
    nesterov: bool = _f(False, "Nesterov momentum (the paper's recipe: no; dvlab-research/ReviewKD's trainer: yes)",
                        check=Bool())
    weight_decay: float = _f(5e-4, "SGD weight decay (mdistiller's 5e-4; the paper's number was lost)",
                             check=Float(min=0))
    lr_milestones: list = _f([150, 180, 210], "epochs after which the learning rate is multiplied by "
                             "lr_decay (paper: 150, 180, 210)", check=IntList(min=1))
    lr_decay: float = _f(0.1, "learning-rate decay factor at each milestone (paper: 0.1)",
                         check=Float(min=0, max=1, min_open=True))
    lr_warmup_epochs: int | None = _f(None, "linear learning-rate warm-up over N epochs: epoch e < N runs at lr x "
                                      "e / N (epochs from 1), epoch N at lr; a passed milestone ends it; null: none "
                                      "(yema-web/LDRLD train_student.py --wram_up)", check=Optional(Int(min=2)))
    lr_warmup_hold: bool = _f(False, "after the warm-up keep its last rate, lr x (N-1) / N, until the first "
                              "milestone instead of lr (LDRLD's adjust_learning_rate_wram_up never sets lr back)",
                              check=Bool())
    seed: int = _f(0, "seed of initialisation, data order and augmentation", check=Int(min=0, max=2**63 - 1))
    # Where and how.
    device: str = _f("auto", "cpu, cuda, cuda:N, mps or auto (cuda when available)", check=Device())
    out: str | None = _f(None, "run directory; default runs/<command>/<dataset>/<name>-s<seed>",
                         check=Optional(Str()))
    amp: str = _f("auto", "autocast dtype: auto (bf16 on CUDA, none on CPU), bf16 or none",
                  check=Choice(("auto", "bf16", "none")))
    channels_last: str = _f("auto", "channels_last memory format: auto (on for CUDA), on, off",
                            check=Choice(("auto", "on", "off"), on_off=True))
    compile: bool = _f(False, "torch.compile the student and teacher", check=Bool())
    cuda_graph: str = _f("auto", "capture the training step in a CUDA graph: auto (on CUDA, single process, "
                         "no compile), on (fail if impossible), off",
                         check=Choice(("auto", "on", "off"), on_off=True))
    eval_batch_size: int = _f(512, "batch size of evaluation", check=Int(min=1))
    eval_every: int = _f(1, "evaluate every N epochs (and always after the last) on the test split, or on the "
                         "validation split when val_fraction > 0", check=Int(min=1))
    # Model selection (figkd tune; docs/tuning.md).
    val_fraction: float = _f(0.0, "fraction of the training split held out as a validation split (stratified, "
                             "seeded by val_seed, recorded in the run directory): the run trains on the rest and "
                             "evaluates on it (val/top1), never reading the test split; 0: no validation split",
                             check=Float(min=0, max=1, max_open=True))
    val_seed: int = _f(0, "seed of the validation split (val_fraction > 0)", check=Int(min=0, max=2**32 - 1))
    test_at_end: bool = _f(False, "with val_fraction > 0: evaluate the final weights on the test split once, "
                           "after the last epoch (the summary's last_top1); the test split is otherwise not read",
                           check=Bool())
    num_workers: int | None = _f(None, "decoding worker processes for JPEG datasets (default min(8, cpus))",
                                  check=Optional(Int(min=0)))
    cache_dir: str | None = _f(None, "folder for pre-resized uint8 caches of JPEG datasets", check=Optional(Str()))
    skip_corrupt: bool = _f(False, "skip unreadable images (counted and reported) instead of failing",
                          check=Bool())
    progress: str = _f("auto", "progress bars: auto (only on a terminal), on, off",
                       check=Choice(("auto", "on", "off"), on_off=True))
    tensorboard: bool = _f(True, "write TensorBoard event files to the run directory", check=Bool())

    # ---------------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def help_table(cls) -> str:
        """One line per field: name, default, help. Used by ``figkd <cmd> --help``."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            shown = json.dumps(default) if default is None or isinstance(default, list | bool) else str(default)
            rows.append(f"  {f.name:<16} {shown:<18} {f.metadata['help']}")
        return "\n".join(rows)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        return apply_overrides(self, changes)


#: Other toolkits' names for config keys (mdistiller's SOLVER.*, torchvision's references, common
#: spellings), each with figkd's key: said in the error of an unknown key.
KEY_SYNONYMS = {
    "learning_rate": "lr", "base_lr": "lr", "wd": "weight_decay", "milestones": "lr_milestones",
    "lr_decay_stages": "lr_milestones", "lr_decay_epochs": "lr_milestones", "lr_decay_rate": "lr_decay",
    "gamma": "lr_decay", "num_epochs": "epochs", "bs": "batch_size", "arch": "model", "data_dir": "data_root",
    "data_path": "data_root", "root": "data_root", "loss": "objective", "distiller": "objective",
    "output_dir": "out", "log_dir": "out", "workers": "num_workers", "teacher_path": "teacher_ckpt",
    "teacher_checkpoint": "teacher_ckpt", "pretrained": "init", "weights": "init", "init_weights": "init",
}


def _check_key(key: str) -> None:
    names = RunConfig.field_names()
    if key not in names:
        hint = did_you_mean(key, names, synonyms=KEY_SYNONYMS)
        raise ConfigError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(names)}")


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with ``overrides`` applied; unknown keys and bad values are a ConfigError."""
    for key in overrides:
        _check_key(key)
    return dataclasses.replace(cfg, **overrides)


def validate(cfg: RunConfig) -> None:
    """Check (and normalise, see :mod:`figkd.checks`) every field against its declared ``check``, then the
    fields that only make sense together."""
    for f in dataclasses.fields(cfg):
        try:
            setattr(cfg, f.name, f.metadata["check"].check(f.name, getattr(cfg, f.name)))
        except ValueError as error:
            raise ConfigError(str(error)) from None
    if cfg.lr_warmup_hold and cfg.lr_warmup_epochs is None:
        raise ConfigError("lr_warmup_hold keeps the last rate of a warm-up, and lr_warmup_epochs is null: set "
                          "lr_warmup_epochs (e.g. 20, LDRLD's) or leave lr_warmup_hold false")


# ------------------------------------------------------------------------- YAML the user writes
class DuplicateKeyError(yaml.YAMLError):
    """A mapping that holds one key twice (PyYAML's own loaders keep the last value without a word)."""

    def __init__(self, key: Any, first: yaml.Mark, second: yaml.Mark):
        self.key, self.first, self.second = key, first, second
        if first.line == second.line:
            where = f"on line {first.line + 1} (columns {first.column + 1} and {second.column + 1})"
        else:
            where = f"on lines {first.line + 1} and {second.line + 1}"
        super().__init__(f"key {key!r} is given twice, {where}")


class StrictLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` that refuses a mapping holding one key twice (:class:`DuplicateKeyError`).
    A key after a merge (``<<: *anchor``) overrides the merged one, as YAML's merge key defines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: SafeLoader says so
                continue
            if first is not key_node.start_mark:
                raise DuplicateKeyError(key, first, key_node.start_mark)
        return super().construct_mapping(node, deep)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` of ``text`` that refuses duplicate keys (:class:`DuplicateKeyError`, a
    ``yaml.YAMLError``): the one YAML loader of what a user writes (config, objective and sweep files,
    ``--set`` values, a run directory's ``config.yaml``)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


#: Byte-order marks and their codecs, longest first (UTF-32's marks begin with UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
TEXT_FILE = "YAML in UTF-8, or UTF-16 with a byte-order mark"


def read_text(path: Path, what: str) -> str:
    """The text of a file the user wrote: UTF-8, or UTF-8/16/32 with a byte-order mark (what Windows'
    editors save), whatever the locale. ConfigError naming ``what`` and ``path`` for a file that is not
    such text (a checkpoint, an archive, UTF-16 without its mark), pointing at the first bad byte."""
    data = path.read_bytes()
    codec = next((c for bom, c in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        detail = f"byte 0x{data[error.start]:02x} at offset {error.start} is not {codec.upper().split('-SIG')[0]}"
    else:
        bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
        if bad is None:
            return text
        detail = f"character 0x{ord(bad.group()[0]):02x} at offset {bad.start()} is a control character"
    raise ConfigError(f"{what} {path} is not a text file ({TEXT_FILE}): {detail}; pass the YAML file you meant, "
                      "or save it as UTF-8")


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse the YAML file ``path`` that a user wrote (``what``: "config file", "objective file", ...) with
    :func:`yaml_load`. ConfigError, on one line naming ``what`` and ``path``, when the file is missing,
    not text (:func:`read_text`), not YAML, or holds a key twice in one mapping (naming the key and both
    lines)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    text = read_text(path, what)
    try:
        return yaml_load(text)
    except DuplicateKeyError as error:
        raise ConfigError(f"{what} {path}: {error}; keep one") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(error).split())}") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are YAML (numbers, lists, null, strings)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        _check_key(key)
        try:
            out[key] = yaml_load(value) if value.strip() else None
        except DuplicateKeyError as exc:
            raise ConfigError(f"--set {key}: {exc} in the value {value!r}; keep one") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {value!r} is not valid YAML ({exc})") from exc
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file: a mapping of RunConfig fields. A run directory's ``config.yaml`` may be
    given as it is: its ``resolved`` section (what figkd recorded the run resolved to) is left out."""
    path = Path(path)
    data = read_yaml(path, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of config keys, got {type(data).__name__}")
    data.pop("resolved", None)
    for key in data:
        _check_key(key)
    return data


def scaled_milestones(epochs: int) -> list[int]:
    """The paper's learning-rate milestones (150, 180, 210 of 240 epochs, Section 4.2) scaled to a run
    of ``epochs`` epochs, those before its last epoch (the rate drops after a milestone's epoch, so one at
    or after the last does nothing): ``[2]`` for 3 epochs, ``[6, 7, 8]`` for 9, ``[]`` for 1."""
    return sorted({m for m in (max(1, round(epochs * f)) for f in (0.625, 0.75, 0.875)) if m < epochs})


def milestones_warning(cfg: RunConfig) -> str | None:
    """A warning when no learning-rate milestone falls inside a run of several epochs (all at or after
    its last epoch, e.g. the paper's [150, 180, 210] in a 10-epoch run), else None. An empty list (a
    constant rate) is a choice and gets none; so does a one-epoch run (no decay is possible)."""
    if cfg.epochs < 2 or not cfg.lr_milestones or min(cfg.lr_milestones) < cfg.epochs:
        return None
    scaled = ",".join(map(str, scaled_milestones(cfg.epochs)))
    return (f"lr_milestones {list(cfg.lr_milestones)} are all at or after the last epoch ({cfg.epochs}): the learning "
            f"rate never decays in this run; for a short run scale them, e.g. --set lr_milestones=[{scaled}] (the "
            "paper's 150/180/210 of 240, as figkd demo does), or --set lr_milestones=[] for a constant rate")


def load_objective(path: str | Path) -> list[Any]:
    """An objective from a YAML file: a term list (``- {term: ce, weight: 1.0}`` ...) or a mapping
    whose ``objective`` key holds one (a config file), for ``--objective FILE``. ConfigError when the
    file is missing, not text, not YAML, holds a key twice (:func:`read_yaml`), or holds neither."""
    path = Path(path)
    data = read_yaml(path, "objective file")
    if isinstance(data, dict) and "objective" in data:
        data = data["objective"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"objective file {path} must hold a term list (- {{term: ce, weight: 1.0}} ...) or a "
                          f"mapping with an 'objective' key, got {type(data).__name__}")
    return data


def is_objective_file(text: Any) -> bool:
    """Whether an ``--objective`` value names a YAML file (``*.yaml``/``*.yml``) rather than a preset."""
    return isinstance(text, str) and text.endswith((".yaml", ".yml"))


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
