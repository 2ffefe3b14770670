"""DiffKD: knowledge diffusion for distillation (Huang et al., NeurIPS 2023), as in its official code.

Source: hunto/image_classification_sota ``lib/models/losses/diffkd/`` (``diffkd.py``,
``diffkd_modules.py``, ``scheduling_ddim.py``) and its wrapper ``lib/models/losses/kd_loss.py``
(``kd_method == 'diffkd'``). Two branches, each a `DiffKDBranch` trained with the student:

- **feature** (3x3 modules): the map before the global pooling (``KD_MODULES``: ``layer4`` of the
  ResNets, ``relu`` of the WRNs, the last 1x1 convolution of the MobileNets; the vocabulary's
  ``*_prepool``); the teacher's map is compressed by a linear autoencoder (``use_ae``), whose
  reconstruction error is a loss part, and the distillation distance is the mean squared error;
- **logits** (1x1 modules, no autoencoder): the logits as (B, C, 1, 1) maps; the distance is KL at
  temperature ``tau`` (``KLDivergence``: ``tau^2`` x batch-mean KL).

In each branch the student's map goes through a 1x1 convolution (``trans``) to the teacher's width, is
mixed with Gaussian noise by a learned noise adapter, ``x = g s + (1 - g) eps`` (``g`` in (0, 1) per
sample: a small network's softmax), and is **denoised by 5 deterministic DDIM steps** (eta 0) of a
noise-prediction network at timesteps 400, 300, 200, 100, 0 (the second half of a 10-step schedule
over 1000 training timesteps, linear betas 1e-4 .. 0.02), then projected (1x1 conv + BN). The same
network is trained on the teacher's (encoded) map with the usual denoising objective: a random
timestep per sample, ``x_t = sqrt(a_t) t + sqrt(1 - a_t) eps``, mean squared error of the predicted
noise. A branch's loss is ``distance(denoised student, teacher) + denoising loss (+ reconstruction)``;
the term is the sum of both branches (the term's parts: ``feat``, ``feat_ddim``, ``feat_ae``,
``logits``, ``logits_ddim``).

Randomness (the adapter's noise, the training noise and timesteps) comes from `figkd.losses.random`,
keyed by the run's seed and by each sample's (epoch, index): not the global generator of the official
code, so that ``--resume``, DDP and the captured step repeat it exactly.

The schedule's coefficients are computed in float32 from float32 ``alphas_cumprod``, as diffusers'
scheduler that the official code copies stores them, so that float64 runs agree with it to rounding.

CIFAR-100 setting: the official code publishes none (its configs are ImageNet's), so every option is the
official default, the one its wrapper applies when a config does not set it (``lib/models/losses/kd_loss.py``
at hunto/DiffKD's submodule commit 6cb1441, lines 77-79: ``ae_channels`` 1024, ``use_ae`` True, ``tau`` 1;
the ImageNet config ``configs/strategies/distill/diffkd/diffkd_b1.yaml``, ResNet34 -> ResNet18, sets the
same three), with CE weight 1 and DiffKD weight 1 (``ori_loss_weight``, ``kd_loss_weight`` of that config),
5 inference steps and 1000 training timesteps (the ``DiffKD`` class's defaults). The autoencoder's width is
thus 1024 whatever the teacher's width (256 for resnet32x4: the "autoencoder" widens the map, as the
official wrapper would on these models); ``ae_channels: null`` gives the ``DiffKD`` class's own default,
half the teacher's width (``diffkd.py`` lines 24-25), which the official wrapper never reaches. Where the
two maps differ in size (resnet32x4 -> ShuffleNetV1: 8x8 and 4x4), the teacher's is average-pooled to the
student's (the official code never meets this case).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import random as rnd
from ._common import check_batch, check_features, check_positive, full_precision
from .registry import register_term

#: diffusers' DDIMScheduler(beta_schedule="linear") defaults used by the official DiffKD.
BETA_START, BETA_END = 1e-4, 0.02
#: Rows of the time embedding (``nn.Embedding(1280, C)`` in the official DiffusionModel).
TIME_EMBEDDINGS = 1280


class Bottleneck(nn.Module):
    """Residual bottleneck of DiffKD (``diffkd_modules.Bottleneck``; names kept: ``block.0`` ... ``block.7``)."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = in_channels // reduction
        if mid < 1:
            raise ValueError(f"DiffKD: a bottleneck of {in_channels} channels with reduction {reduction} has none "
                             f"left: the distilled map needs at least {reduction} channels")
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1), nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x


class NoiseAdapter(nn.Module):
    """The per-sample mixing weight ``g`` in (0, 1) of the student's map and the noise
    (``diffkd_modules.NoiseAdapter``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size == 3:
            self.feat = nn.Sequential(Bottleneck(channels, channels, reduction=8), nn.AdaptiveAvgPool2d(1))
        else:
            self.feat = nn.Sequential(
                nn.Conv2d(channels, 2 * channels, 1), nn.BatchNorm2d(2 * channels), nn.ReLU(inplace=True),
                nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels),
            )
        self.pred = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pred(self.feat(x).flatten(1)).softmax(1)[:, 0]


class DiffusionModel(nn.Module):
    """The noise-prediction network: ``pred(x + embedding(t))`` (``diffkd_modules.DiffusionModel``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.time_embedding = nn.Embedding(TIME_EMBEDDINGS, channels)
        if kernel_size == 3:
            self.pred = nn.Sequential(Bottleneck(channels, channels), Bottleneck(channels, channels),
                                      nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        else:
            self.pred = nn.Sequential(
                nn.Conv2d(channels, 4 * channels, 1), nn.BatchNorm2d(4 * channels), nn.ReLU(inplace=True),
                nn.Conv2d(4 * channels, channels, 1), nn.BatchNorm2d(channels),
                nn.Conv2d(channels, 4 * channels, 1), nn.BatchNorm2d(4 * channels), nn.ReLU(inplace=True),
                nn.Conv2d(4 * channels, channels, 1),
            )

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``embedding``: (C,) for one timestep of the whole batch, or (B, C)."""
        return self.pred(x + embedding[..., None, None].to(x.dtype))


class AutoEncoder(nn.Module):
    """Linear autoencoder of the teacher's map (``diffkd_modules.AutoEncoder``)."""

    def __init__(self, channels: int, latent_channels: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(channels, latent_channels, 1), nn.BatchNorm2d(latent_channels))
        self.decoder = nn.Sequential(nn.Conv2d(latent_channels, channels, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return hidden, self.decoder(hidden)


def ddim_schedule(num_train_timesteps: int, inference_steps: int) -> list[tuple[int, float, float, float, float]]:
    """The deterministic DDIM steps of DiffKD's denoising: ``[(t, sqrt(a_t), sqrt(1 - a_t), sqrt(a_prev),
    sqrt(1 - a_prev))]`` for t = (n - 1) r, ..., r, 0 with r = T // (2 n), ``a`` the cumulative product
    of ``1 - beta`` (linear betas), ``a_prev`` = a_{t - r} or 1 below 0 (``set_alpha_to_one``). Each value
    is computed in float32 as diffusers' ``DDIMScheduler.step`` does."""
    alphas = alphas_cumprod(num_train_timesteps, device="cpu")  # host constants of the step
    ratio = num_train_timesteps // (2 * inference_steps)
    steps = []
    for t in reversed(range(0, inference_steps * ratio, ratio)):
        a_t = alphas[t]
        a_prev = alphas[t - ratio] if t - ratio >= 0 else torch.tensor(1.0, device="cpu")
        steps.append((t, float(a_t ** 0.5), float((1 - a_t) ** 0.5), float(a_prev ** 0.5), float((1 - a_prev) ** 0.5)))
    return steps


def alphas_cumprod(num_train_timesteps: int, device=None) -> torch.Tensor:
    """(T,) float32 cumulative products of ``1 - beta_t``, betas linear in [1e-4, 0.02] (diffusers' linear
    schedule, computed as it does: float32 ``linspace`` and ``cumprod``)."""
    betas = torch.linspace(BETA_START, BETA_END, num_train_timesteps, dtype=torch.float32, device=device)
    return torch.cumprod(1.0 - betas, dim=0)


@full_precision
def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b)


@full_precision
def _kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    log_p = F.log_softmax(student / temperature, dim=1)
    q = F.softmax(teacher / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_p, q, reduction="batchmean")


def diffkd_loss(denoised_student: torch.Tensor, teacher: torch.Tensor, predicted_noise: torch.Tensor,
                noise: torch.Tensor, criterion: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    """One DiffKD branch's loss without its autoencoder: ``distance(denoised_student, teacher)`` plus the
    denoising loss ``mse(predicted_noise, noise)``.

    Args:
        denoised_student: (B, C, H, W) the student's map after denoising and projection.
        teacher: (B, C, H, W) the teacher's (encoded) map, detached here.
        predicted_noise, noise: the noise-prediction network's output on the noised teacher map and the
            noise that was added (same shape as ``teacher``).
        criterion: ``"mse"`` (feature branch: mean squared error) or ``"kl"`` (logits branch: ``tau^2`` x
            batch-mean KL of the channel softmaxes, the official ``KLDivergence``).
        temperature: ``tau`` of ``"kl"`` (official ``tau`` 1).

    Raises ValueError for an empty batch. Computed in float32 or wider.
    """
    check_features(denoised_student, teacher, name="diffkd_loss", inputs=("denoised_student", "teacher"))
    return _distance(denoised_student, teacher.detach(), criterion, temperature) + _mse(predicted_noise, noise)


def _distance(student, teacher, criterion, temperature):
    if criterion == "mse":
        return _mse(student, teacher)
    if criterion == "kl":
        return _kl(student, teacher, temperature)
    raise ValueError(f"diffkd_loss: criterion must be 'mse' or 'kl', got {criterion!r}")


class DiffKDBranch(nn.Module):
    """One DiffKD module (official ``DiffKD``; parameter names kept): ``trans``, ``model``,
    ``noise_adapter``, ``proj`` and, with ``latent_channels``, ``ae``.

    ``kernel_size`` 3 (feature maps) or 1 (logits as 1x1 maps). `forward` takes the random draws as
    tensors, so that it is a deterministic function of its inputs.
    """

    def __init__(self, student_channels: int, teacher_channels: int, kernel_size: int, inference_steps: int,
                 num_train_timesteps: int, latent_channels: int | None) -> None:
        super().__init__()
        self.ae = AutoEncoder(teacher_channels, latent_channels) if latent_channels else None
        width = latent_channels or teacher_channels
        self.width = width
        self.trans = nn.Conv2d(student_channels, width, 1)
        self.model = DiffusionModel(width, kernel_size)
        self.noise_adapter = NoiseAdapter(width, kernel_size)
        self.proj = nn.Sequential(nn.Conv2d(width, width, 1), nn.BatchNorm2d(width))
        self.steps = ddim_schedule(num_train_timesteps, inference_steps)
        self.register_buffer("alphas_cumprod", alphas_cumprod(num_train_timesteps), persistent=False)

    def denoise(self, student: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The student's map (after ``trans``) noised by the adapter's weight and denoised by the DDIM steps."""
        gamma = self.noise_adapter(student)[:, None, None, None]
        x = gamma * student + (1 - gamma) * noise
        for t, sqrt_a, sqrt_b, sqrt_a_prev, sqrt_b_prev in self.steps:
            eps = self.model(x, self.model.time_embedding.weight[t])
            x0 = (x - sqrt_b * eps) / sqrt_a
            x = sqrt_a_prev * x0 + sqrt_b_prev * eps
        return x

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, adapter_noise: torch.Tensor,
                train_noise: torch.Tensor, timesteps: torch.Tensor, criterion: str,
                temperature: float) -> dict[str, torch.Tensor]:
        """Parts ``distill``, ``ddim`` and (with the autoencoder) ``ae`` of the branch's loss.

        ``adapter_noise``: shaped like ``trans(student)``; ``train_noise``: like the (encoded) teacher map;
        ``timesteps``: (B,) int64 in [0, T).
        """
        parts = {}
        if self.ae is not None:
            hidden, reconstruction = self.ae(teacher)
            parts["ae"] = _mse(teacher, reconstruction)
            teacher = hidden.detach()
        denoised = self.proj(self.denoise(self.trans(student), adapter_noise))
        a = self.alphas_cumprod[timesteps].to(teacher.dtype)[:, None, None, None]
        noisy = a ** 0.5 * teacher + (1 - a) ** 0.5 * train_noise.to(teacher.dtype)
        predicted = self.model(noisy, self.model.time_embedding(timesteps))
        parts["distill"] = _distance(denoised, teacher.detach(), criterion, temperature)
        parts["ddim"] = _mse(predicted, train_noise)
        return parts


@register_term("diffkd", inputs=("student_prepool", "teacher_prepool", "student_logits", "teacher_logits",
                                 "index", "epoch"), function=diffkd_loss,
               source="Huang et al. NeurIPS 2023; hunto/image_classification_sota lib/models/losses/diffkd/ and "
                      "kd_loss.py (defaults: its wrapper's, kd_loss.py:77-79, and configs/strategies/distill/diffkd/"
                      "diffkd_b1.yaml; no CIFAR setting is published)",
               help="DiffKD: the student's feature and logits denoised by trained diffusion models, matched to "
                    "the teacher's",
               presets={
                   # DiffKD: ori_loss_weight 1, kd_loss_weight 1, tau 1, use_ae (hunto/image_classification_sota
                   # configs/strategies/distill/diffkd/diffkd_b1.yaml, ImageNet; the term's defaults, the
                   # autoencoder width the official wrapper's default 1024); no CIFAR setting is published.
                   "diffkd": [{"term": "ce"}, {"term": "diffkd"}],
               })
class DiffKD(nn.Module):
    """The DiffKD term: a feature branch on the maps before the global pooling and a logits branch (see
    the module docstring); returns the parts ``feat``, ``feat_ddim``, ``feat_ae`` (with the autoencoder),
    ``logits`` and ``logits_ddim``.

    Options: ``inference_steps`` (5), ``num_train_timesteps`` (1000), ``use_ae`` (True), ``ae_channels``
    (1024, the official wrapper's default; None: half the teacher's width, the ``DiffKD`` class's), ``temperature``
    (the logits branch's tau, 1).
    """

    @classmethod
    def from_context(cls, context, inference_steps: int = 5, num_train_timesteps: int = 1000, use_ae: bool = True,
                     ae_channels: int | None = 1024, temperature: float = 1.0) -> DiffKD:
        student, teacher = context.require("diffkd", "student", "teacher")
        return cls(student.prepool, teacher.prepool, student.logits, teacher.logits, context.seed,
                   inference_steps, num_train_timesteps, use_ae, ae_channels, temperature)

    def __init__(self, student_prepool, teacher_prepool, student_classes: int, teacher_classes: int, seed: int = 0,
                 inference_steps: int = 5, num_train_timesteps: int = 1000, use_ae: bool = True,
                 ae_channels: int | None = 1024, temperature: float = 1.0) -> None:
        super().__init__()
        for name, value in (("inference_steps", inference_steps), ("num_train_timesteps", num_train_timesteps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DiffKD: {name} must be a positive integer, got {value!r}")
        if num_train_timesteps // (2 * inference_steps) < 1 or num_train_timesteps > TIME_EMBEDDINGS:
            raise ValueError(f"DiffKD: num_train_timesteps must be in [2 inference_steps, {TIME_EMBEDDINGS}], got "
                             f"{num_train_timesteps} with {inference_steps} inference steps")
        if not isinstance(use_ae, bool):
            raise ValueError(f"DiffKD: use_ae must be true or false, got {use_ae!r}")
        if ae_channels is not None and (isinstance(ae_channels, bool) or not isinstance(ae_channels, int)
                                        or ae_channels < 1):
            raise ValueError(f"DiffKD: ae_channels must be a positive integer or null, got {ae_channels!r}")
        self.temperature = check_positive(temperature, "DiffKD: temperature")
        self.num_train_timesteps = num_train_timesteps
        self.inference_steps = inference_steps
        t_channels = int(teacher_prepool[0])
        latent = (ae_channels or t_channels // 2) if use_ae else None
        self.feature = DiffKDBranch(int(student_prepool[0]), t_channels, 3, inference_steps, num_train_timesteps,
                                    latent)
        self.logits = DiffKDBranch(student_classes, teacher_classes, 1, inference_steps, num_train_timesteps, None)
        self.keys = {f"{b}/{d}": rnd.make_key(seed, f"diffkd/{b}/{d}")
                     for b in ("feature", "logits") for d in ("adapter_noise", "train_noise", "timesteps")}

    def draws(self, branch: str, index: torch.Tensor, epoch: torch.Tensor, student_shape, teacher_shape):
        """The branch's (adapter noise, training noise, timesteps) for the samples ``index`` at ``epoch``."""
        b = index.shape[0]
        adapter = rnd.normal(self.keys[f"{branch}/adapter_noise"], epoch, index, _numel(student_shape))
        train = rnd.normal(self.keys[f"{branch}/train_noise"], epoch, index, _numel(teacher_shape))
        steps = rnd.randint(self.keys[f"{branch}/timesteps"], epoch, index, 1, self.num_train_timesteps)
        return adapter.reshape(b, *student_shape), train.reshape(b, *teacher_shape), steps[:, 0]

    def _branch(self, name: str, branch: DiffKDBranch, student, teacher, index, epoch, criterion):
        if teacher.shape[2:] != student.shape[2:]:
            teacher = F.adaptive_avg_pool2d(teacher, student.shape[2:])
        width = branch.width
        adapter, train, steps = self.draws(name, index, epoch, (width, *student.shape[2:]),
                                           (width, *teacher.shape[2:]))
        dtype = student.dtype if student.dtype == torch.float64 else torch.float32
        return branch(student, teacher, adapter.to(dtype), train.to(dtype), steps, criterion, self.temperature)

    def forward(self, student_prepool, teacher_prepool, student_logits, teacher_logits, index, epoch):
        check_batch("DiffKD", student_prepool=student_prepool, teacher_prepool=teacher_prepool,
                    student_logits=student_logits, teacher_logits=teacher_logits)
        feature = self._branch("feature", self.feature, student_prepool, teacher_prepool.detach(), index, epoch, "mse")
        logits = self._branch("logits", self.logits, student_logits[:, :, None, None],
                              teacher_logits.detach()[:, :, None, None], index, epoch, "kl")
        parts = {"feat": feature["distill"], "feat_ddim": feature["ddim"]}
        if "ae" in feature:
            parts["feat_ae"] = feature["ae"]
        parts.update(logits=logits["distill"], logits_ddim=logits["ddim"])
        return parts

    def extra_repr(self) -> str:
        return (f"inference_steps={self.inference_steps}, num_train_timesteps={self.num_train_timesteps}, "
                f"temperature={self.temperature}")


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
