"""The MNIST family on the real published files (issue 17, section 2).

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package, which `.ci/run` installs
(``/usr/share/datasets/fashion-mnist``); ``FIGKD_FASHION_MNIST_ROOT`` points elsewhere. MNIST and
KMNIST are read from ``FIGKD_MNIST_ROOT`` / ``FIGKD_KMNIST_ROOT`` when set. Each test is skipped,
with the reason, when its files are absent.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from figkd.data import ArrayDataset, build_dataset, build_loader, compute_mean_std, recipe_for
from figkd.data.idx import FAMILIES, idx_files
from figkd.engine.evaluate import evaluate
from figkd.errors import DataError
from figkd.models import build_model

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


def _root(name: str, env: str, default: str | None = None) -> str | None:
    root = os.environ.get(env, default)
    if root is None:
        return None
    try:
        idx_files(FAMILIES[name], root, True)
        idx_files(FAMILIES[name], root, False)
    except FileNotFoundError:
        return None
    return root


FASHION = _root("fashion_mnist", "FIGKD_FASHION_MNIST_ROOT", DEBIAN_FASHION)
MNIST = _root("mnist", "FIGKD_MNIST_ROOT")
KMNIST = _root("kmnist", "FIGKD_KMNIST_ROOT")
needs_fashion = pytest.mark.skipif(
    FASHION is None,
    reason=f"Fashion-MNIST files absent from {DEBIAN_FASHION}: apt-get install dataset-fashion-mnist "
    "(or set FIGKD_FASHION_MNIST_ROOT)",
)


@pytest.fixture(scope="module")
def fashion():
    return build_dataset("fashion_mnist", FASHION, train=True), build_dataset("fashion_mnist", FASHION, train=False)


def _sha(img: torch.Tensor) -> str:
    return hashlib.sha256(img[0].numpy().tobytes()).hexdigest()


@needs_fashion
def test_fashion_mnist_counts_histogram_and_known_images(fashion):
    tr, te = fashion
    assert (len(tr), len(te)) == (60000, 10000)
    assert np.bincount(tr.targets).tolist() == [6000] * 10
    assert np.bincount(te.targets).tolist() == [1000] * 10
    # SHA-256 of the 28x28 grey plane, computed from the files of dataset-fashion-mnist
    # 0.0~git20200523.55506a9-1 (the first training image is an ankle boot, the first test one too)
    img, label = tr[0]
    assert (label, tr.classes[label]) == (9, "Ankle boot")
    assert _sha(img) == "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b"
    img, label = te[0]
    assert label == 9 and _sha(img) == "ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787"
    assert tr[59999][1] == 5 and _sha(tr[59999][0]) == (
        "489c477715bd5275b2646b28941db83e4ff26ece5302728fcb7632e1be5110ac"
    )


@needs_fashion
def test_fashion_mnist_recipe_statistics_are_the_files(fashion):
    tr, _ = fashion
    mean, std = compute_mean_std(tr.images[:, :1])
    native = recipe_for("fashion_mnist")
    assert abs(native.mean[0] - mean[0]) < 5e-5 and abs(native.std[0] - std[0]) < 5e-5
    padded = recipe_for("fashion_mnist_32")
    mean32, std32 = compute_mean_std(np.pad(tr.images[:, :1], ((0, 0), (0, 0), (2, 2), (2, 2))))
    assert abs(padded.mean[0] - mean32[0]) < 5e-5 and abs(padded.std[0] - std32[0]) < 5e-5


@needs_fashion
def test_fashion_mnist_short_training_beats_chance(fashion):
    # resnet8 on 6,000 training images for one pass (46 SGD steps of 128), tested on 2,000 test images:
    # 10-20 s on two CPU cores. Chance is 10%; this pass reached 61% here (threshold: 4x chance).
    tr, te = fashion
    torch.manual_seed(0)
    sub_tr = ArrayDataset("fashion_mnist", FASHION, True, tr.images[:6000], tr.targets[:6000], tr.classes)
    sub_te = ArrayDataset("fashion_mnist", FASHION, False, te.images[:2000], te.targets[:2000], te.classes)
    train = build_loader("fashion_mnist", FASHION, True, 128, seed=0, dataset=sub_tr)
    test = build_loader("fashion_mnist", FASHION, False, 500, dataset=sub_te)
    model = build_model("resnet8", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    train.set_epoch(0)
    for batch in train:
        loss = torch.nn.functional.cross_entropy(model(batch.images), batch.target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    top1 = evaluate(model, test, torch.device("cpu"))["top1"]
    assert top1 > 40.0, f"top-1 {top1:.1f}% after one pass (chance: 10%)"


@pytest.mark.skipif(MNIST is None, reason="MNIST files absent: set FIGKD_MNIST_ROOT to a folder holding them")
def test_mnist_real_files():
    tr, te = build_dataset("mnist", MNIST, True), build_dataset("mnist_32", MNIST, False)
    # the published class counts (LeCun's MNIST page: 60,000 / 10,000)
    assert np.bincount(tr.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(te.targets).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    mean, std = compute_mean_std(tr.images[:, :1])
    assert abs(mean[0] - 0.1307) < 5e-5 and abs(std[0] - 0.3081) < 5e-5


@pytest.mark.skipif(KMNIST is None, reason="KMNIST files absent: set FIGKD_KMNIST_ROOT to a folder holding them")
def test_kmnist_real_files():
    tr, te = build_dataset("kmnist", KMNIST, True), build_dataset("kmnist_32", KMNIST, False)
    assert np.bincount(tr.targets).tolist() == [6000] * 10  # rois-codh/kmnist README: balanced
    assert np.bincount(te.targets).tolist() == [1000] * 10


@needs_fashion
def test_fashion_mnist_files_refused_as_mnist(capsys, tmp_path):
    # The new-user trial's run: before, it trained on these files under MNIST's class names "0".."9".
    from figkd.cli import main

    out = tmp_path / "m"
    code = main(["train", "--model", "resnet8", "--dataset", "mnist", "--data-root", FASHION, "--epochs", "1",
                 "--set", "steps_per_epoch=3", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"figkd: error: mnist: the files in {FASHION} are Fashion-MNIST's (") and (
        "use --dataset fashion_mnist" in err[0]
    ), err[0]
    assert not out.exists()  # nothing half-written
    with pytest.raises(DataError, match="are Fashion-MNIST's"):
        build_dataset("kmnist_32", FASHION, train=False)


@needs_fashion
def test_fashion_mnist_files_are_known_by_their_content():
    # Debian re-compresses the files (their .gz MD5 are not torchvision's); each is known by its content.
    from figkd.data.idx import _file_bytes, known_file

    for train in (True, False):
        for path in idx_files(FAMILIES["fashion_mnist"], FASHION, train):
            stem = os.path.basename(path).removesuffix(".gz")
            assert known_file(*_file_bytes(path))[:2] == ("fashion_mnist", stem), path
