"""Device and precision policy: which device, autocast dtype, memory format and step capture a run uses.

- device ``auto``: CUDA when available, else CPU; under ``torchrun`` each rank takes ``cuda:LOCAL_RANK``.
- ``amp: auto``: bf16 autocast on CUDA, none on CPU (``bf16`` / ``none`` force it). Losses are
  computed in float32 or wider whatever the autocast (`figkd.losses._common.full_precision`).
- ``channels_last: auto``: on for CUDA.
- ``cuda_graph: auto``: the training step is captured in a CUDA graph on CUDA, in a single process,
  without ``compile`` (`figkd.engine.graph`); ``on`` that cannot be honoured is a ConfigError.
"""

from __future__ import annotations

import contextlib

import torch

from ..config import RunConfig
from ..errors import ConfigError
from .distributed import DistInfo


def resolve_device(spec: str, info: DistInfo) -> torch.device:
    """The device of ``spec`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``); ConfigError if CUDA (or
    that CUDA device) or MPS is asked for but absent."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for but torch.cuda.is_available() is False (no GPU, or a CPU "
                              "build of PyTorch): use --device cpu, or --device auto to take a GPU where there is one")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device} was asked for but there are {torch.cuda.device_count()} "
                              "CUDA device(s): cuda:0 ... cuda:N-1")
        if info.enabled and device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device mps was asked for but torch.backends.mps.is_available() is False: use --device "
                          "cpu, or --device auto")
    return device


def resolve_amp(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the step (None: no autocast)."""
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def resolve_channels_last(cfg: RunConfig, device: torch.device) -> bool:
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


def autocast_context(device: torch.device, amp_dtype: torch.dtype | None, cache: bool = True):
    """bf16 (or other) autocast on ``device``, or nothing; ``cache=False`` inside CUDA graph capture."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype, cache_enabled=cache)


def _why_not_captured(cfg: RunConfig, device: torch.device, info: DistInfo, backend_given: bool) -> str | None:
    if cfg.cuda_graph == "off":
        return "cuda_graph is off"
    if device.type != "cuda" and not backend_given:
        return f"device {device} is not CUDA"
    if info.enabled:
        return "distributed (DDP) steps are not captured (their all-reduce runs in DDP's hooks)"
    if cfg.compile:
        return "compile is on (torch.compile and a hand-captured graph are not combined; use one or the other)"
    return None


def resolve_cuda_graph(cfg: RunConfig, device: torch.device, info: DistInfo,
                       backend_given: bool = False) -> tuple[bool, str]:
    """Whether the training step is captured in a CUDA graph, and if not, why (for the log).
    ``cuda_graph: on`` that cannot be honoured is a ConfigError."""
    why = _why_not_captured(cfg, device, info, backend_given)
    if why is not None and cfg.cuda_graph == "on":
        raise ConfigError(f"cuda_graph is on but the training step cannot be captured: {why} "
                          "(set cuda_graph to auto or off)")
    return why is None, why or ""
