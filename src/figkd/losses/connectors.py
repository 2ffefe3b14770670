"""Connectors: small trainable modules that map a student feature into the teacher's feature space.

They belong to the objective (a term owns its connector), so the engine trains, synchronises, saves
and resumes them with the student (`figkd.engine.learner.Learner`); exported student weights stay
model-only.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class ConvReg(nn.Module):
    """Convolutional regressor of FitNet's hint: student map ``(C_s, H_s, W_s)`` -> teacher map
    ``(C_t, H_t, W_t)``, then BatchNorm and (by default) ReLU.

    The layer depends on the spatial sizes, as in mdistiller's ``ConvReg``
    (``mdistiller/distillers/_common.py``, itself RepDistiller's ``models/util.py``):

    - ``H_s == 2 H_t``: ``Conv2d(C_s, C_t, 3, stride=2, padding=1)``;
    - ``2 H_s == H_t``: ``ConvTranspose2d(C_s, C_t, 4, stride=2, padding=1)``;
    - ``H_s >= H_t``: ``Conv2d(C_s, C_t, (1 + H_s - H_t, 1 + W_s - W_t))`` (a 1x1 convolution for equal
      sizes);

    each with a bias, followed by ``BatchNorm2d(C_t)``. Parameter count for equal sizes:
    ``C_s C_t + C_t`` (conv) ``+ 2 C_t`` (BatchNorm affine). Any other size pair (a student map
    smaller than the teacher's, but not half of it) raises ValueError naming both shapes.
    """

    def __init__(self, student_shape: Sequence[int], teacher_shape: Sequence[int], use_relu: bool = True):
        super().__init__()
        s_c, s_h, s_w = (int(v) for v in student_shape[-3:])
        t_c, t_h, t_w = (int(v) for v in teacher_shape[-3:])
        if s_h == 2 * t_h:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
        elif s_h * 2 == t_h:
            self.conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
        elif s_h >= t_h and s_w >= t_w:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
        else:
            raise ValueError(f"ConvReg: no connector maps a student feature of shape {(s_c, s_h, s_w)} to a teacher "
                             f"feature of shape {(t_c, t_h, t_w)} (the student map is smaller than the teacher's "
                             "and not half its size); choose another hint layer")
        self.bn = nn.BatchNorm2d(t_c)
        self.relu = nn.ReLU() if use_relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))
