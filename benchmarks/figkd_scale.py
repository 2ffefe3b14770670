"""How large FiGKD's default detail term is beside the cross-entropy, over class counts 2..200 (issue 27,
item 6): the measurements behind the few-classes warning of `figkd.losses.figkd` (docs/method.md §8).

Eq. 7 weighs the detail term 2 and the cross-entropy 1. The default term (MSE of the Haar detail
coefficients of the zero-padded logit grid, ``mean_per_band``) is a *mean per coefficient*: a teacher's
logit vector whose energy sits in a few large logits (the predicted class) spreads that energy over the
grid's H W / 4 coefficients per band, so the term shrinks about like 1 / C as the class count grows,
while the cross-entropy at the start is log C. Three parts:

1. ``spike``: no training. A teacher whose logit vector is one spike of height ``m`` (its class; the
   others 0) against a student at 0, averaged over the spike's position: the weighted MSE terms divided
   by ``m^2`` (exact: multiply by the square of a teacher's logit margin to get the term; the KL is not
   quadratic, it is given at ``m = --spike-margin``), and the default term for i.i.d. N(0, 1) teacher
   logits (no structure: about constant in C).
2. ``synthetic``: real training, per class count. A Gaussian-mixture task (``--dim`` features, class
   centroids N(0, ``--spread``^2 I), unit noise), an MLP teacher trained with cross-entropy on the
   paper's recipe (SGD 0.05, momentum 0.9, weight decay 5e-4, batch 64) to its (near-)perfect training
   fit, then MLP students from one initialisation per seed, for ``--epochs`` epochs each, with: CE
   alone; Eq. 7 with the default term; with ``reduction: mean_all``; with ``criterion: kl,
   temperature: 4``. Recorded: the ratio of each weighted term to the cross-entropy at the student's
   initialisation (over the training set) and in the last epoch, the teacher's logit margin and spread,
   the students' test top-1 and whether a loss became non-finite.
3. ``digits``: the same measurement on real images: the bundled digits at 16x16 restricted to their
   first C classes (C in ``--digits-classes``), a resnet8 teacher and a resnet8 student.

Prints one table per part and writes JSON (default ``benchmarks/results/figkd_scale_cpu.json``).

    python benchmarks/figkd_scale.py                     # all parts, the numbers of docs/method.md §8
    python benchmarks/figkd_scale.py --parts spike       # seconds
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchutil import machine_info, write_json
from figkd.grid import grid_shape
from figkd.losses import figkd_loss

CLASSES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 50, 64, 100, 128, 200)
#: Eq. 7's weight of the detail term (FiGKD Section 5.1.2; the ``figkd`` preset).
DETAIL_WEIGHT = 2.0
VARIANTS = {
    "default": {},
    "mean_all": {"reduction": "mean_all"},
    "kl": {"criterion": "kl", "temperature": 4.0},
}


def detail(student: torch.Tensor, teacher: torch.Tensor, variant: str) -> torch.Tensor:
    return figkd_loss(student, teacher, **VARIANTS[variant])


# ------------------------------------------------------------------------------------------------ 1. spike
def spike_part(classes, margin: float) -> list[dict]:
    rows = []
    for c in classes:
        student = torch.zeros(c, c, dtype=torch.float64)
        spike = torch.eye(c, dtype=torch.float64)  # row i: the spike at class i; the batch mean averages positions
        gauss = torch.randn(4096, c, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        rows.append({
            "classes": c, "grid": list(grid_shape(c)), "ce_at_init": math.log(c),
            "default_spike_per_m2": DETAIL_WEIGHT * float(detail(student, spike, "default")),
            "mean_all_spike_per_m2": DETAIL_WEIGHT * float(detail(student, spike, "mean_all")),
            "kl_spike": DETAIL_WEIGHT * float(detail(student, margin * spike, "kl")),
            "default_gauss": DETAIL_WEIGHT * float(detail(torch.zeros_like(gauss), gauss, "default")),
        })
    return rows


# -------------------------------------------------------------------------------------------- 2. synthetic
def mixture(c: int, dim: int, spread: float, per_class: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centroids = spread * torch.randn(c, dim, generator=g)
    def draw(n):
        y = torch.arange(c).repeat_interleave(n)
        return centroids[y] + torch.randn(len(y), dim, generator=g), y
    return draw(per_class), draw(max(10, per_class // 2))


def mlp(dim: int, width: int, depth: int, c: int) -> nn.Module:
    layers, d = [], dim
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, c))


def sgd(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # the paper's recipe (Section 4.2): SGD, momentum 0.9, weight decay 5e-4 (mdistiller's), lr 0.05 per batch of 64
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)


def batches(n: int, batch: int, g: torch.Generator):
    order = torch.randperm(n, generator=g)
    return [order[i:i + batch] for i in range(0, n, batch)]


def train_teacher(model, x, y, epochs, lr, batch, seed):
    opt, g = sgd(model, lr), torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in batches(len(x), batch, g):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def logit_stats(t: torch.Tensor, y: torch.Tensor) -> dict:
    """The teacher's margin (true-class logit minus the largest other), its logits' spread per sample."""
    true = t.gather(1, y[:, None])[:, 0]
    other = t.scatter(1, y[:, None], float("-inf")).amax(1)
    return {"teacher_margin_median": float((true - other).median()), "teacher_logit_std_mean": float(t.std(1).mean()),
            "teacher_train_top1": float((t.argmax(1) == y).float().mean() * 100)}


def ratios(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> dict:
    ce = float(F.cross_entropy(s, y))
    out = {"ce": ce}
    for variant in VARIANTS:
        out[f"{variant}_ratio"] = DETAIL_WEIGHT * float(detail(s, t, variant)) / ce
    return out


def distil(student, teacher_logits, x, y, xt, yt, variant, epochs, lr, batch, seed) -> dict:
    opt, g = sgd(student, lr), torch.Generator().manual_seed(seed)
    finite, last = True, []
    for _ in range(epochs):
        last = []
        for idx in batches(len(x), batch, g):
            s = student(x[idx])
            ce = F.cross_entropy(s, y[idx])
            d = detail(s, teacher_logits[idx], variant) if variant else torch.zeros(())
            loss = ce + DETAIL_WEIGHT * d
            if not torch.isfinite(loss):
                finite = False
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            last.append((ce.item(), DETAIL_WEIGHT * d.item()))
        if not finite:
            break
    with torch.no_grad():
        top1 = float((student(xt).argmax(1) == yt).float().mean() * 100) if finite else float("nan")
    ce_last = statistics.fmean(c for c, _ in last) if last else float("nan")
    d_last = statistics.fmean(d for _, d in last) if last else float("nan")
    return {"top1": top1, "finite": finite, "ce_last_epoch": ce_last, "weighted_detail_last_epoch": d_last,
            "ratio_last_epoch": d_last / ce_last if last and ce_last > 0 else float("nan")}


def synthetic_part(args) -> list[dict]:
    rows = []
    for c in args.classes:
        t0 = time.perf_counter()
        (x, y), (xt, yt) = mixture(c, args.dim, args.spread, args.per_class, seed=1000 + c)
        torch.manual_seed(0)
        teacher = train_teacher(mlp(args.dim, 256, 2, c), x, y, args.teacher_epochs, args.lr, 64, seed=0)
        with torch.no_grad():
            t_train = teacher(x)
            teacher_top1 = float((teacher(xt).argmax(1) == yt).float().mean() * 100)
        row = {"classes": c, "teacher_test_top1": teacher_top1, **logit_stats(t_train, y), "seeds": []}
        for seed in args.seeds:
            torch.manual_seed(seed)
            init = mlp(args.dim, args.student_width, 1, c)
            with torch.no_grad():
                at_init = ratios(init(x), t_train, y)
            runs = {}
            for variant in (None, *VARIANTS):
                student = mlp(args.dim, args.student_width, 1, c)
                student.load_state_dict(init.state_dict())
                runs[variant or "ce_alone"] = distil(student, t_train, x, y, xt, yt, variant, args.epochs, args.lr,
                                                     64, seed)
            row["seeds"].append({"seed": seed, "at_init": at_init, "runs": runs})
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        _print_synthetic_row(row)
    return rows


def _mean(row, get):
    return statistics.fmean(get(s) for s in row["seeds"])


def _print_synthetic_row(row):
    init = {v: _mean(row, lambda s, v=v: s["at_init"][f"{v}_ratio"]) for v in VARIANTS}
    top1 = {k: _mean(row, lambda s, k=k: s["runs"][k]["top1"]) for k in ("ce_alone", *VARIANTS)}
    last = _mean(row, lambda s: s["runs"]["default"]["ratio_last_epoch"])
    print(f"{row['classes']:>4} {row['teacher_test_top1']:6.1f} {row['teacher_margin_median']:7.2f} "
          f"{init['default']:8.2f} {last:8.2f} {init['mean_all']:8.2f} {init['kl']:8.2f} | "
          + " ".join(f"{top1[k]:6.1f}" for k in ("ce_alone", *VARIANTS)), flush=True)


# ----------------------------------------------------------------------------------------------- 3. digits
def digits_part(args) -> list[dict]:
    from figkd.data import build_dataset
    from figkd.models import build_model

    def split(train, c):
        ds = build_dataset("digits_16", None, train=train)
        y = torch.as_tensor(ds.targets)
        keep = y < c
        x = torch.as_tensor(ds.images)[keep].float() / 255.0
        return (x - 0.5) / 0.5, y[keep]

    rows = []
    for c in args.digits_classes:
        t0 = time.perf_counter()
        (x, y), (xt, yt) = split(True, c), split(False, c)
        torch.manual_seed(0)
        teacher = train_teacher(build_model("resnet8", c), x, y, args.digits_teacher_epochs, args.lr, 64, seed=0)
        with torch.no_grad():
            t_train = teacher(x)
            teacher_top1 = float((teacher(xt).argmax(1) == yt).float().mean() * 100)
        row = {"classes": c, "teacher_test_top1": teacher_top1, **logit_stats(t_train, y), "seeds": []}
        for seed in args.seeds:
            torch.manual_seed(seed)
            init = build_model("resnet8", c)
            with torch.no_grad():
                at_init = ratios(init.eval()(x), t_train, y)
            runs = {}
            for variant in (None, *VARIANTS):
                student = build_model("resnet8", c)
                student.load_state_dict(init.state_dict())
                runs[variant or "ce_alone"] = distil(student.train(), t_train, x, y, xt, yt, variant,
                                                     args.digits_epochs, args.lr, 64, seed)
                student.eval()
                with torch.no_grad():
                    runs[variant or "ce_alone"]["top1"] = float((student(xt).argmax(1) == yt).float().mean() * 100) \
                        if runs[variant or "ce_alone"]["finite"] else float("nan")
            row["seeds"].append({"seed": seed, "at_init": at_init, "runs": runs})
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        _print_synthetic_row(row)
    return rows


HEADER = ("   C  t-top1  margin  def@init def@last  all@init  kl@init |  alone    def    all     kl   "
          "(ratio = 2 x term / CE; top-1 of the students)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["spike", "synthetic", "digits"],
                   choices=["spike", "synthetic", "digits"])
    p.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    p.add_argument("--spike-margin", type=float, default=10.0, help="the spike's height for the KL of part 1")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--dim", type=int, default=32, help="features of the synthetic task")
    p.add_argument("--spread", type=float, default=1.0, help="standard deviation of the class centroids")
    p.add_argument("--per-class", type=int, default=100, help="training samples per class (test: half)")
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--student-width", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5, help="epochs of each synthetic student")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--digits-classes", type=int, nargs="+", default=[2, 3, 5, 10])
    p.add_argument("--digits-teacher-epochs", type=int, default=15)
    p.add_argument("--digits-epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: these small models ran ~10x faster on 1 thread than on 2 busy cores)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/figkd_scale_cpu.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    payload = {"machine": machine_info("cpu", args), "detail_weight": DETAIL_WEIGHT, "variants": VARIANTS}
    if "spike" in args.parts:
        payload["spike"] = spike_part(args.classes, args.spike_margin)
        print(f"   C  grid    CE@init  2*default/m^2  2*mean_all/m^2  2*kl(m={args.spike_margin:g})  2*default(N(0,1))")
        for r in payload["spike"]:
            print(f"{r['classes']:>4} {r['grid'][0]:>2}x{r['grid'][1]:<3} {r['ce_at_init']:7.3f} "
                  f"{r['default_spike_per_m2']:14.4f} {r['mean_all_spike_per_m2']:15.4f} {r['kl_spike']:11.4f} "
                  f"{r['default_gauss']:17.3f}")
    if "synthetic" in args.parts:
        print("synthetic Gaussian mixture, MLP teacher and students\n" + HEADER)
        payload["synthetic"] = synthetic_part(args)
    if "digits" in args.parts:
        print("digits 16x16, first C classes, resnet8 teacher and students\n" + HEADER)
        payload["digits"] = digits_part(args)
    path = write_json(payload, args.out, "figkd_scale_cpu.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
