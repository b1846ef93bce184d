"""The suite against mdistiller's own training pipeline, one epoch each, on the same machine and images.

    python -m pytest benchmarks/test_bench_peer.py --benchmark-only -n 0 -s    # not part of the CI test run

Two cases, on the same 10,000 images of the CIFAR-10 copy (a seeded stratified choice), batch 64, SGD lr 0.05,
momentum 0.9, weight decay 5e-4 (mdistiller's `configs/cifar100/kd.yaml`), one epoch:

- `kd`: ResNet56 -> ResNet20 with KD (T = 4, CE 0.1, KD 0.9), the same teacher and student weights on both sides;
- `baseline`: ResNet20 with cross-entropy alone (mdistiller's `Vanilla`), so the data pipeline's share shows.

Sides:

- **suite-fp32, suite-auto**: the suite's own `kd` / `baseline` method through `CellContext.fit` (the harness:
  images held as uint8 in memory, crop-and-flip augmentation on uint8 tensors in the training process, the
  epoch checkpoint written), in fp32 and in what `--precision auto` resolves to on this machine.
- **mdistiller**: its unmodified code from the vendored snapshot (`../shared/vendor/mdistiller`, or
  `$SUITE_VENDOR`): its `CIFAR100Instance.__getitem__` (PIL image per sample) over the CIFAR-10 copy, its
  `get_cifar100_train_transform()` (RandomCrop 32 pad 4, flip, ToTensor, Normalize), a DataLoader as its
  `get_cifar100_dataloaders` builds it (shuffle, `num_workers = CFG.DATASET.NUM_WORKERS` = 2, no pin_memory),
  its `KD` / `Vanilla` distiller and models (`mdistiller.models.cifar`), and a loop that does what
  `BaseTrainer.train_epoch` and `train_iter` do per epoch and per batch (`mdistiller/engine/trainer.py`
  lines 92-107 and 153-177: `adjust_learning_rate`, `distiller.train()`, zero_grad, forward with
  image/target/epoch, the sum of the loss terms' means, backward, step, `accuracy(topk=(1, 5))` and the loss
  meter), minus what needs CUDA (`.cuda()`, DataParallel) and the per-epoch validation, checkpoint and logging,
  which the suite's side does not do per epoch either (it writes one checkpoint per epoch, counted).

torchvision's CIFAR classes check the official files' MD5s, which the JPEG re-encoded copy does not match: the
mdistiller side reads it through a subclass of `CIFAR100Instance` that points at the CIFAR-10 files and skips
only that check. Rounds are interleaved (suite-fp32, suite-auto, mdistiller, then again), each side's best
round is kept, and the table at the end prints images/s and the ratios suite / mdistiller. The threads are
what each side uses by default on this machine: the suite trains with every core in one process;
mdistiller's main process takes torch's default threads and its two loader workers share the same cores.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import create_model
from suite.context import CellContext
from suite.data import default_data_dir, load_dataset
from suite.numerics import resolve_precision
from suite.plugins import get_method
from suite.profiles import Recipe
from suite.spec import CellSpec
from tests.reference import copy_state_in_order, vendor_dir

IMAGES = int(os.environ.get("SUITE_BENCH_IMAGES", 10_000))  # fewer only to try the benchmark out
DEVICE = torch.device(os.environ.get("SUITE_BENCH_DEVICE", "cpu"))  # cuda: both sides on the GPU (gpu_check.sh)
BATCH, ROUNDS = 64, 2
RECIPE = Recipe(epochs=1, batch_size=BATCH, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="constant")


@pytest.fixture(scope="module")
def mdistiller():
    root = vendor_dir()
    if root is None:
        pytest.skip("mdistiller snapshot not found (set SUITE_VENDOR to the folder holding it)")
    sys.path.insert(0, str(root / "mdistiller"))
    import mdistiller.dataset.cifar100 as datasets
    import mdistiller.distillers as distillers
    import mdistiller.models.cifar as models
    from suite.mdistiller_adapter import default_config

    cfg = default_config()
    cfg.merge_from_file(str(root / "mdistiller" / "configs" / "cifar100" / "kd.yaml"))
    utils = sys.modules["_mdistiller_engine.utils"]  # loaded by default_config beside cfg.py
    return {"datasets": datasets, "distillers": distillers, "models": models, "cfg": cfg, "utils": utils}


@pytest.fixture(scope="module")
def images():
    """The 10,000 training images both sides read: the suite's split and their positions in the files."""
    data = load_dataset("cifar10")
    labels = data.train.labels.numpy()
    rng = np.random.default_rng(0)
    per_class = IMAGES // data.info.num_classes
    index = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                                    for c in range(data.info.num_classes)]))
    return data, index


def copy_instance_class(datasets):
    """mdistiller's CIFAR-100 dataset class (its `__getitem__` unchanged) over the CIFAR-10 files of the copy."""
    from torchvision.datasets import CIFAR10

    class CIFAR10CopyInstance(datasets.CIFAR100Instance):
        base_folder, train_list, test_list = CIFAR10.base_folder, CIFAR10.train_list, CIFAR10.test_list
        meta = {**CIFAR10.meta, "md5": None}  # the copy's files do not match the official MD5s: existence only

        def _check_integrity(self) -> bool:
            return True

    return CIFAR10CopyInstance


def mdistiller_epoch(md, student, teacher, subset) -> float:
    """One epoch as mdistiller's BaseTrainer runs it; returns seconds (loader start-up included)."""
    cfg, utils = md["cfg"], md["utils"]
    loader = torch.utils.data.DataLoader(subset, batch_size=cfg.SOLVER.BATCH_SIZE, shuffle=True,
                                         num_workers=cfg.DATASET.NUM_WORKERS)
    distiller = md["distillers"].KD(student, teacher, cfg) if teacher is not None else \
        md["distillers"].Vanilla(student)
    optimizer = torch.optim.SGD(distiller.get_learnable_parameters(), lr=cfg.SOLVER.LR,
                                momentum=cfg.SOLVER.MOMENTUM, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    losses, top1 = utils.AverageMeter(), utils.AverageMeter()
    epoch = 1
    start = time.perf_counter()
    utils.adjust_learning_rate(epoch, cfg, optimizer)
    distiller.to(DEVICE).train()
    for image, target, _index in loader:
        optimizer.zero_grad()
        image = image.float()
        if DEVICE.type == "cuda":  # as its train_iter does
            image, target = image.cuda(non_blocking=True), target.cuda(non_blocking=True)
        preds, losses_dict = distiller(image=image, target=target, epoch=epoch)
        loss = sum([l.mean() for l in losses_dict.values()])
        loss.backward()
        optimizer.step()
        acc1, _acc5 = utils.accuracy(preds, target, topk=(1, 5))
        losses.update(loss.cpu().detach().numpy().mean(), image.size(0))
        top1.update(acc1[0], image.size(0))
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def suite_epoch(data, index, method: str, teacher_file: Path | None, precision: str) -> float:
    """One epoch of the suite's method through the harness, as a cell runs it (checkpoint included)."""
    params = {"teacher": "resnet56", "teacher_checkpoint": str(teacher_file)} if teacher_file else {}
    spec = CellSpec.make(method, "resnet20", "cifar10", "cpu", params=params)
    plugin = get_method(method)
    with tempfile.TemporaryDirectory() as artifacts:
        ctx = CellContext(spec=spec, key="bench", params=plugin.make_params(params), recipe=RECIPE, data=data,
                          train=data.train.subset(torch.as_tensor(index)), test=data.test,
                          device=DEVICE, artifact_dir=Path(artifacts), deps={}, progress=False,
                          precision=precision)
        torch.manual_seed(0)
        start = time.perf_counter()
        plugin.run(ctx)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


@pytest.mark.parametrize("case", ["kd", "baseline"])
def test_one_epoch_against_mdistiller(benchmark, record_peer, mdistiller, images, tmp_path, case):
    data, index = images
    dataset = copy_instance_class(mdistiller["datasets"])(
        root=str(default_data_dir()), train=True, transform=mdistiller["datasets"].get_cifar100_train_transform())
    subset = torch.utils.data.Subset(dataset, index.tolist())
    assert [dataset.targets[i] for i in index[:500]] == data.train.labels[index[:500]].tolist()  # the same images

    torch.manual_seed(0)
    teacher = create_model("resnet56", 10) if case == "kd" else None  # the same weights on both sides
    teacher_file = None
    if teacher is not None:
        teacher_file = tmp_path / "teacher.pt"
        torch.save(teacher.state_dict(), teacher_file)
    auto = resolve_precision("auto", DEVICE)
    seconds: dict[str, list[float]] = {"suite-fp32": [], f"suite-auto ({auto})": []}

    def suite_sides_then_fresh_models():
        seconds["suite-fp32"].append(suite_epoch(data, index, case, teacher_file, "fp32"))
        seconds[f"suite-auto ({auto})"].append(suite_epoch(data, index, case, teacher_file, auto))
        torch.manual_seed(0)
        student = mdistiller["models"].resnet20(num_classes=10)
        copy_state_in_order(create_model("resnet20", 10), student)
        md_teacher = None
        if teacher is not None:
            md_teacher = mdistiller["models"].resnet56(num_classes=10)
            copy_state_in_order(teacher, md_teacher)
        return (student, md_teacher), {}

    benchmark.extra_info.update(case=case, images=len(index), precision_auto=auto)
    benchmark.pedantic(lambda s, t: mdistiller_epoch(mdistiller, s, t, subset), setup=suite_sides_then_fresh_models,
                       rounds=ROUNDS, warmup_rounds=0)
    for side, times in seconds.items():
        record_peer(case, side, len(index) / min(times))
    record_peer(case, "mdistiller", len(index) / benchmark.stats.stats.min)
