"""``figkd demo``: the whole method on real data that ships with the package, in a minute on a CPU.

On scikit-learn's bundled handwritten digits (``digits_16``: 1,797 images, 10 classes, their 8x8
pixels upscaled to 16x16 — 4x cheaper than the 32x32 ``digits``), it trains a teacher and a student
alone, then distils the student from the teacher with KD and with FiGKD (both students in one run,
sharing each batch's teacher forward), and prints a table of the test top-1 of each. Runs land under
``--out`` (default ``runs/demo``); running the demo again reuses the finished runs (``--overwrite``
starts again).

The models are small CIFAR ResNets (teacher ``resnet20``, student ``resnet8``) and the schedules
short (9 epochs), so that the demo fits in a minute on two CPU cores (54 s, docs/performance.md); the recipe is
otherwise the paper's (SGD, momentum 0.9, weight decay 5e-4, batch 64, step decay by 10).
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import RunConfig, scaled_milestones  # noqa: F401 (scaled_milestones: also this module's API)
from .engine.run import run

DATASET = "digits_16"
TEACHER = "resnet20"
STUDENT = "resnet8"
#: Epochs of the teacher and of each student run, and the learning-rate milestones (scaled from the
#: paper's 240 epochs with decay at 150, 180, 210: the same fractions 0.625, 0.75, 0.875).
DEMO_EPOCHS = 9


def run_demo(out: str = "runs/demo", device: str = "auto", epochs: int | None = None,
             overwrite: bool = False, log=print) -> int:
    epochs = epochs or DEMO_EPOCHS
    out_dir = Path(out)
    base = RunConfig(dataset=DATASET, epochs=epochs, lr_milestones=scaled_milestones(epochs), device=device,
                     seed=0, progress="off", tensorboard=True)
    start = time.perf_counter()
    log(f"figkd demo: {DATASET} (scikit-learn's digits at 16x16), teacher {TEACHER}, student {STUDENT}, "
        f"{epochs} epochs each, runs under {out_dir}")
    [teacher] = run(base.replace(model=TEACHER, out=str(out_dir / "teacher")), "train",
                    overwrite=overwrite, log=log)
    [alone] = run(base.replace(model=STUDENT, out=str(out_dir / "student")), "train",
                  overwrite=overwrite, log=log)
    distilled = run([base.replace(teacher=TEACHER, teacher_ckpt=str(out_dir / "teacher"), student=STUDENT,
                                  objective=objective, out=str(out_dir / objective))
                     for objective in ("kd", "figkd")], "distill", overwrite=overwrite, log=log)
    rows = [(TEACHER, "teacher (alone)", teacher), (STUDENT, "student (alone)", alone)]
    rows += [(STUDENT, s["objective"].upper().replace("FIGKD", "FiGKD"), s) for s in distilled]
    log("")
    log(f"{'model':<10} {'method':<16} {'top-1 last':>10} {'top-1 best':>10}  run directory")
    for model, method, s in rows:
        log(f"{model:<10} {method:<16} {s['last_top1']:>10.2f} {s['best_top1']:>10.2f}  {s['run_dir']}")
    log(f"\n{len(rows)} runs in {time.perf_counter() - start:.0f}s; metrics.jsonl, TensorBoard events (tb/) "
        f"and checkpoints in each run directory")
    log("FiGKD ran with the paper's defaults, whose detail term outweighs the cross-entropy at 10 classes (the "
        "warning above, docs/method.md section 8); with few classes distil with criterion: kl instead, e.g. "
        "figkd distill ... --set 'objective=[{term: ce}, {term: figkd, weight: 2.0, criterion: kl}]'.")
    return 0
