"""Model weights on disk: figkd's safetensors files, and the ``.pth`` teachers of mdistiller/RepDistiller.

- :func:`save_weights` writes a model's ``state_dict`` as safetensors, atomically (a temporary file in
  the same directory, then ``os.replace``), so a reader never sees a half-written file.
- :func:`load_state_dict_file` reads either format. The format is recognised from the content, not the
  suffix. A ``.pth`` file is read with ``torch.load(weights_only=True)``, which unpickles only tensors
  and plain containers; a file that needs any other object is refused (unpickling can run arbitrary
  code). The weights are the file itself when it is a flat ``{name: tensor}`` mapping (figkd,
  torchvision), else its ``"model"`` entry (RepDistiller, mdistiller), ``"net"`` or ``"state_dict"``.
  A ``module.`` prefix on every key (``nn.DataParallel`` / DDP) and an ``_orig_mod.`` prefix
  (``torch.compile``) are stripped. One class besides those is allowed: ``argparse.Namespace``, which
  RepDistiller stores beside the weights of ``<model>_last.pth`` (its training options, ``'opt'``); it
  is a plain attribute container (rebuilt by setting attributes, no code of its own), whose values the
  same unpickler restricts to plain types. A file that is neither safetensors nor a PyTorch file
  (zip archive or legacy pickle) is reported as not a checkpoint, without being unpickled.
- :func:`load_weights` loads a file into a model and :func:`load_teacher` builds a registry model and
  loads a file into it; both match keys strictly and explain any mismatch.
"""

from __future__ import annotations

import argparse
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from ..atomic import atomic_write_bytes
from ..errors import CheckpointError
from .registry import build_model, get_model_info

# Where the CIFAR-100 teachers used by the paper (resnet32x4, wrn_40_2, vgg13, resnet56, resnet110,
# ResNet50) are published.
TEACHERS_PUBLISHED = (
    "mdistiller publishes them as cifar_teachers.tar at "
    "https://github.com/megvii-research/mdistiller/releases/tag/checkpoints "
    "(files cifar_teachers/<name>_vanilla/ckpt_epoch_240.pth); RepDistiller's "
    "scripts/fetch_pretrained_teachers.sh fetches the same files"
)
# Where the weights live inside the training checkpoints of other codebases, in the order tried.
STATE_DICT_ENTRIES = ("model", "net", "state_dict")
# Prefixes that wrappers put before every key: DataParallel / DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_SHOWN = 5  # keys listed per kind of mismatch
#: Classes the weights-only unpickler may rebuild besides tensors and plain containers (see above).
SAFE_GLOBALS = (argparse.Namespace,)
#: How a PyTorch file starts: a zip archive (torch.save since 1.6), or the legacy format, a pickle
#: (protocol byte 0x80, then any protocol number) of torch's magic number 0x1950a86a20f9469cfc6c
#: (``torch/serialization.py``: ``MAGIC_NUMBER``).
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DataParallel/DDP and torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model.state_dict()`` (unwrapped, on the CPU) to ``path`` as safetensors, atomically.

    ``metadata`` (string to string) is stored in the file's header. Returns the path.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in unwrap_model(model).state_dict().items()}
    return atomic_write_bytes(path, safetensors_save(state, metadata={"format": "pt", **(metadata or {})}))


def _is_safetensors(head: bytes, size: int) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON header starting with "{".
    return len(head) >= 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


def _is_torch_file(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC) or (head[:1] == b"\x80" and head[2:14] == LEGACY_MAGIC)


def _unpickler_reason(error: Exception) -> str:
    """The useful sentence of PyTorch's weights-only error, e.g. 'Unsupported global: GLOBAL a.B ...'."""
    text = " ".join(str(error).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    for end in (" Please use", " Check the documentation"):
        text = text.split(end, 1)[0]
    return text.strip() or type(error).__name__


def _strip_wrapper_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                changed = True
    return state


def _weights_from_checkpoint(obj: object, path: Path) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of weights, found a {type(obj).__name__}")
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj)
    for entry in STATE_DICT_ENTRIES:
        weights = obj.get(entry)
        if isinstance(weights, Mapping):
            bad = [k for k, v in weights.items() if not isinstance(v, Tensor)]
            if bad:
                raise CheckpointError(f"{path}: entry {entry!r} holds non-tensor values, e.g. {bad[0]!r}")
            return dict(weights)
    raise CheckpointError(
        f"{path}: no weights found: the file is neither a flat name -> tensor mapping nor a dict with the "
        f"weights under one of {', '.join(repr(e) for e in STATE_DICT_ENTRIES)}; "
        f"its top-level keys are {', '.join(repr(k) for k in list(obj)[:10])}"
    )


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The weights in a figkd safetensors file or a ``.pth`` checkpoint (CPU tensors, prefixes stripped).

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` for a file that cannot
    be read safely or holds no weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (looked for a figkd .safetensors file or a "
            f"RepDistiller/mdistiller .pth checkpoint there). Teacher checkpoints: {TEACHERS_PUBLISHED}."
        )
    with path.open("rb") as handle:
        head = handle.read(16)
    is_safetensors = _is_safetensors(head, path.stat().st_size)
    if not is_safetensors and not _is_torch_file(head):
        raise CheckpointError(
            f"{path} is not a checkpoint: it is neither a safetensors file nor a PyTorch file (a zip archive or "
            f"a legacy torch.save pickle); it starts with bytes {head[:8].hex(' ')}. Pass a figkd .safetensors "
            f"file or an mdistiller/RepDistiller .pth checkpoint"
        )
    try:
        if is_safetensors:
            state = safetensors_load(path.read_bytes())
        else:
            with warnings.catch_warnings(), torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                # torch warns about a pickle protocol it did not write before failing on such a file;
                # the CheckpointError below says all there is to say.
                warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
                obj = torch.load(path, map_location="cpu", weights_only=True)
            state = _weights_from_checkpoint(obj, path)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: torch.load(weights_only=True), which unpickles only tensors and "
            f"plain containers, cannot read it ({_unpickler_reason(error)}). figkd never unpickles arbitrary "
            f"Python objects, because unpickling can run arbitrary code. If you trust the file, re-save its "
            f"weights: torch.save(torch.load(path, weights_only=False)['model'], new_path)."
        ) from error
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors or torch checkpoint ({type(error).__name__}: {error})"
        ) from error
    return _strip_wrapper_prefixes(state)


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_keys(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    # BatchNorm fills a missing ``num_batches_tracked`` itself (checkpoints of PyTorch < 0.4.1).
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    differing = [
        (k, state[k], expected[k]) for k in expected if k in state and state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or differing):
        return
    lines = [f"{source} does not fit the model ({type(model).__name__}):"]
    if missing:
        lines.append(
            f"  missing keys ({len(missing)}): {', '.join(missing[:_SHOWN])}"
            + (" ..." if len(missing) > _SHOWN else "")
        )
    if unexpected:
        lines.append(
            f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:_SHOWN])}"
            + (" ..." if len(unexpected) > _SHOWN else "")
        )
    if differing:
        shown = "; ".join(
            f"{k}: checkpoint {_shape(a)} vs model {_shape(b)}" for k, a, b in differing[:_SHOWN]
        )
        lines.append(
            f"  shapes differ ({len(differing)}): {shown}" + (" ..." if len(differing) > _SHOWN else "")
        )
    lines.append("  " + _hint(model, state))
    raise CheckpointError("\n".join(lines))


def _hint(model: nn.Module, state: Mapping[str, Tensor]) -> str:
    classifier = getattr(model, "classifier_name", "")
    model_classes = getattr(model, "num_classes", None)
    key = f"{classifier}.weight" if classifier else None
    if key is not None and key in state and state[key].dim() == 2:
        found = state[key].shape[0]
        if found != model_classes:
            return (
                f"The checkpoint's classifier ({key}) has {found} outputs but the model was built with "
                f"num_classes={model_classes}: build it with num_classes={found}, or use another checkpoint."
            )
        return f"The classifier ({key}) matches ({found} classes): is the checkpoint of another architecture?"
    matrices = [(k, v) for k, v in state.items() if v.dim() == 2]
    if matrices:
        last_key, last = matrices[-1]
        return (
            f"Is the checkpoint of another architecture? Its last linear weight {last_key} has shape "
            f"{_shape(last)} ({last.shape[0]} outputs); the model has num_classes={model_classes}."
        )
    return "Is the checkpoint of another architecture?"


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the weights in ``path`` (either format) into ``model`` with strict key matching; return it."""
    target = unwrap_model(model)
    state = load_state_dict_file(path)
    _check_keys(target, state, f"checkpoint {path}")
    target.load_state_dict(state, strict=True)
    return model


def load_teacher(name: str, path: str | os.PathLike, num_classes: int) -> nn.Module:
    """Build registry model ``name`` with ``num_classes`` and load ``path`` into it; returned in eval mode.

    ``path`` is a figkd safetensors file or a RepDistiller/mdistiller ``.pth`` checkpoint such as
    ``cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth``. Keys must match exactly; a mismatch
    (another architecture, another class count) is a :class:`CheckpointError` naming the first missing
    and unexpected keys, the shapes that differ and the checkpoint's classifier size.
    """
    info = get_model_info(name)
    model = build_model(info.name, num_classes)
    state = load_state_dict_file(path)
    _check_keys(model, state, f"checkpoint {path} for model {info.name!r} (num_classes={num_classes})")
    model.load_state_dict(state, strict=True)
    return model.eval()
