"""The training step captured once in a CUDA graph and replayed (issue #6).

At batch 64 a CIFAR step is a few hundred small kernels (teacher forward, student forward and
backward, loss, SGD); launching them from Python costs more than running them. A CUDA graph
records the kernels of one step once and replays them with one launch. What replay needs:

- every tensor the step reads or writes lives at a fixed address: the batch is copied into static
  input buffers, the learning rate is a tensor updated in place (``recipe.set_lr``), the epoch of
  DKD's warm-up is a tensor (``TrainStep.epoch``), the metric sums persist across epochs and are
  zeroed in place (``EpochAccumulator.reset``), gradients are created once, inside the capture;
- nothing in the step reads a tensor on the host (``.item()``: ``tests/test_engine_step.py``) or
  depends on a Python value that changes between steps (it would be frozen at capture).

:class:`StepGraph` runs a step function over static buffers: a few eager warm-up steps (lazy state:
momentum buffers, cached wavelet filters, the accumulators' sums; PyTorch's CUDA-graph notes warm up
on a side stream before capturing a whole network), then one capture, then replays. Two backends:

- :class:`CudaGraphBackend`: ``torch.cuda.CUDAGraph``, the real thing.
- :class:`RecordingBackend`: the CPU stand-in the tests use. It records every ATen operation of the
  "captured" step with its shapes, strides, dtypes and non-tensor arguments, and checks at every
  replay that the step issues exactly the same operations with the same arguments (a Python value
  that changed would be frozen in a real capture) and reads nothing on the host.

:class:`StorageGuard` remembers the address of every persistent tensor the step touches and raises
if one has moved (a replay would then read or write freed memory): the engine checks it once per
epoch; the recording backend at every replay.

The augmentation is not part of the graph: the loaders draw each batch's random parameters on the
host from generators seeded by (seed, epoch, step), which is what makes ``--resume`` and DDP shards
bit-identical to one uninterrupted process (docs/data.md); the batch is a handful of kernels before
the copy into the static buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .device import resolve_cuda_graph

#: Eager steps before the capture: PyTorch's CUDA-graphs notes ("whole network capture") warm up
#: for 3 iterations on a side stream; the momentum buffers are created by the first.
WARMUP_STEPS = 3


class GraphCaptureError(RuntimeError):
    """The step cannot be captured or replayed safely (the message names the operation or tensor)."""


# ------------------------------------------------------------------------------------- guard
class StorageGuard:
    """The storage address of each named tensor at creation; :meth:`check` raises if one moved."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.addresses = {name: t.data_ptr() for name, t in tensors.items()}

    def moved(self, tensors: dict[str, torch.Tensor]) -> list[str]:
        out = [name for name, addr in self.addresses.items() if name not in tensors or tensors[name].data_ptr() != addr]
        return out + [name for name in tensors if name not in self.addresses]

    def check(self, tensors: dict[str, torch.Tensor]) -> None:
        moved = self.moved(tensors)
        if moved:
            shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
            raise GraphCaptureError(
                f"{len(moved)} tensor(s) used by the captured training step were replaced or added since "
                f"the capture: {shown}. A replay would use stale memory; state read by a captured step must "
                "be updated in place (tensor.copy_/fill_/zero_), never reassigned"
            )


# ---------------------------------------------------------------------------------- backends
class CudaGraphBackend:
    """Warm-up on a side stream and capture with ``torch.cuda.graph``, as PyTorch's notes show."""

    name = "cuda"

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def stable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors whose addresses must not change after the capture: all of them."""
        return tensors

    def reset(self) -> None:
        """Nothing to forget: every capture makes a new graph."""

    def warmup(self, fn: Callable[[], None]) -> None:
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            fn()
        main.wait_stream(side)

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Record ``fn`` (its kernels are not run); the returned callable replays them."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay  # the bound method keeps the graph alive


def _signature(value: Any) -> Any:
    """What a CUDA graph freezes of one argument: a tensor's layout, or a non-tensor's value."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.stride()), str(value.dtype), str(value.device))
    if isinstance(value, list | tuple):
        return tuple(_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _signature(v)) for k, v in sorted(value.items()))
    if value is None or isinstance(value, bool | int | float | str | complex):
        return value
    if isinstance(value, torch.dtype | torch.device | torch.layout | torch.memory_format):
        return str(value)
    return type(value).__name__


class _OpRecorder(TorchDispatchMode):
    """Records (operation, argument signature) of every ATen call, the calls that return a Python
    value computed from tensor data (a host read, which a CUDA graph cannot contain) and the tensors
    made from host data (``torch.tensor(...)``: on a GPU a host-to-device copy, not allowed during
    capture, and its value would be frozen)."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[tuple[str, Any]] = []
        self.host_reads: list[str] = []
        self.host_tensors = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        out = func(*args, **kwargs)
        if name.startswith("profiler."):
            return out
        if name.startswith("aten.lift_fresh"):
            self.host_tensors += 1
        self.trace.append((name, _signature(args), _signature(kwargs)))
        if isinstance(out, bool | int | float | complex) and not isinstance(out, torch.SymInt):
            self.host_reads.append(name)
        return out


class RecordingBackend:
    """CPU stand-in for :class:`CudaGraphBackend` that checks what a capture would freeze.

    ``capture`` returns a replay that runs the step eagerly under an operation recorder. The first
    replay is the reference; every later one must issue the same ATen operations with the same
    shapes, strides, dtypes and non-tensor arguments, and none may read a tensor on the host.
    ``guard`` (a callable returning the step's persistent tensors by name) adds the address check
    of :class:`StorageGuard` at every replay, gradients (names ending in ``.grad``) excepted: each
    eager rerun allocates them anew, where a real capture allocates them once in the graph's pool.
    """

    name = "recording"

    def __init__(self, guard: Callable[[], dict[str, torch.Tensor]] | None = None):
        self.reference: list[tuple[str, Any]] | None = None
        self.replays = 0
        self.warmups = 0
        self.guard_tensors = guard
        self._guard: StorageGuard | None = None

    @staticmethod
    def stable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All but the gradients, which each eager rerun allocates anew."""
        return {k: v for k, v in tensors.items() if not k.endswith(".grad")}

    def _guarded(self) -> dict[str, torch.Tensor]:
        assert self.guard_tensors is not None
        return self.stable(self.guard_tensors())

    def reset(self) -> None:
        """Forget the reference trace and addresses (a new capture follows)."""
        self.reference = None
        self._guard = None

    def warmup(self, fn: Callable[[], None]) -> None:
        self.warmups += 1
        fn()

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        def replay() -> None:
            recorder = _OpRecorder()
            with recorder:
                fn()
            if recorder.host_reads:
                raise GraphCaptureError(
                    f"the step reads tensors on the host ({', '.join(sorted(set(recorder.host_reads)))}); "
                    "a CUDA graph cannot contain a host synchronisation")
            if recorder.host_tensors:
                raise GraphCaptureError(
                    f"the step creates {recorder.host_tensors} tensor(s) from host data (torch.tensor / "
                    "torch.as_tensor); on a GPU that is a host-to-device copy, which a capture cannot contain "
                    "(and whose value it would freeze): create such constants once, outside the step")
            if self.reference is None:
                self.reference = recorder.trace
                if self.guard_tensors is not None:
                    self._guard = StorageGuard(self._guarded())
            else:
                _compare(self.reference, recorder.trace, self.replays)
                if self._guard is not None:
                    self._guard.check(self._guarded())
            self.replays += 1

        return replay


def _compare(reference: list, trace: list, replay: int) -> None:
    for i, (want, got) in enumerate(zip(reference, trace, strict=False)):
        if want != got:
            raise GraphCaptureError(
                f"replay {replay} of the captured step differs from the capture at operation {i}: captured "
                f"{want[0]} with {want[1:]}, now {got[0]} with {got[1:]}. A value the step takes from Python "
                "changed between steps; a CUDA graph would have frozen it (keep it in a tensor updated in place)")
    if len(reference) != len(trace):
        raise GraphCaptureError(
            f"replay {replay} of the captured step ran {len(trace)} operations, the capture {len(reference)}: "
            "the step's control flow depends on a value that changes between steps")


# -------------------------------------------------------------------------------------- step
class StepGraph:
    """Runs ``step_fn(**static_inputs)`` for each batch: warm-up steps, one capture, then replays.

    ``persistent`` returns every tensor the step reads or writes that outlives a step (parameters,
    gradients, optimizer state, metric sums, ...) by name; :meth:`check` verifies that none moved
    since the capture. With ``fallback`` a failed capture is logged and the run goes on eagerly
    (the step function called on the batch itself); without it the failure is raised.
    """

    def __init__(self, step_fn: Callable[..., None], backend, *, persistent: Callable[[], dict[str, torch.Tensor]],
                 warmup_steps: int = WARMUP_STEPS, fallback: bool = True, log: Callable[[str], None] = print):
        self.step_fn = step_fn
        self.backend = backend
        self.persistent = persistent
        self.warmup_steps = warmup_steps
        self.fallback = fallback
        self.log = log
        self.static: dict[str, torch.Tensor | None] | None = None
        self.replay: Callable[[], None] | None = None
        self.guard: StorageGuard | None = None
        self.failed: BaseException | None = None
        self.warmed = 0

    @property
    def captured(self) -> bool:
        return self.replay is not None

    def _run_static(self) -> None:
        assert self.static is not None
        self.step_fn(**self.static)

    def __call__(self, **inputs: torch.Tensor | None) -> None:
        if self.failed is not None:
            self.step_fn(**inputs)
            return
        if self.static is None:
            self.static = {k: None if v is None else torch.empty_like(v) for k, v in inputs.items()}
        for key, value in inputs.items():
            buffer = self.static[key]
            if (value is None) != (buffer is None) or (value is not None and value.shape != buffer.shape):
                raise GraphCaptureError(f"input {key!r} changed shape or presence between steps "
                                        f"({None if buffer is None else tuple(buffer.shape)} -> "
                                        f"{None if value is None else tuple(value.shape)}); a captured step "
                                        "needs static shapes (training drops the last partial batch)")
            if value is not None:
                buffer.copy_(value)
        if self.replay is not None:
            self.replay()
            return
        if self.warmed < self.warmup_steps:
            self.backend.warmup(self._run_static)
            self.warmed += 1
            return
        try:
            self.replay = self.backend.capture(self._run_static)
        except Exception as exc:  # noqa: BLE001 - any capture failure is reported, then handled
            if not self.fallback:
                raise GraphCaptureError(f"capturing the training step in a CUDA graph failed: {exc}") from exc
            self.failed = exc
            self.log(f"CUDA graph: capturing the training step failed ({type(exc).__name__}: {exc}); "
                     "continuing without it (eager steps)")
            self.step_fn(**inputs)
            return
        self.guard = StorageGuard(self.backend.stable(self.persistent()))
        self.log(f"CUDA graph: training step captured after {self.warmed} warm-up steps ({self.backend.name})")
        self.replay()

    def restart(self) -> None:
        """Forget the capture (the step changed: a student was dropped): the next steps warm up and capture
        again, with new static buffers. The old graph's memory is freed with it."""
        self.static = self.replay = self.guard = None
        self.warmed = 0
        self.backend.reset()

    def check(self) -> None:
        """Raise :class:`GraphCaptureError` if a tensor the captured step uses has moved."""
        if self.guard is not None:
            self.guard.check(self.backend.stable(self.persistent()))


def step_graph(step, cfg, device: torch.device, info, backend=None, *,
               persistent: Callable[[], dict[str, torch.Tensor]], log=print) -> StepGraph | None:
    """The training step ``step`` (`figkd.engine.step.TrainStep`) wrapped for capture in a CUDA graph where the
    run's config allows it (on CUDA, one process, no compile: `figkd.engine.device.resolve_cuda_graph`), else
    None, the log saying why on CUDA. ``backend``: the capture backend (tests pass `RecordingBackend`);
    ``persistent``: every tensor the step reads or writes across steps, by name."""
    use, why = resolve_cuda_graph(cfg, device, info, backend is not None)
    if not use:
        if device.type == "cuda":
            log(f"CUDA graph: not used ({why}); training steps run eagerly")
        return None
    step.graphed = True
    return StepGraph(step, backend or CudaGraphBackend(device), persistent=persistent,
                     fallback=cfg.cuda_graph == "auto", log=log)
