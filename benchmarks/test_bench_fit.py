"""Training throughput of the shared harness against a minimal hand-written PyTorch loop, in fp32 and bf16.

    python -m pytest benchmarks/ --benchmark-only -n 0     # not part of the CI test run (testpaths = tests)

Same model, batch size, optimizer, data (already in memory) and numerics on both sides; no augmentation
in either, so `fit/raw` shows only what the harness adds (uint8 -> float normalization per batch, the LR
scheduler step, loss/accuracy accumulation, the NaN guard, progress bookkeeping). `fit vs fp32` is the
speed-up of the precision policy. Each case runs one warm-up round and five timed rounds (pytest-benchmark
pedantic mode, a fresh model each round), each fit round right after a raw-loop round; the summary uses the
fastest round of each side.
"""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from baselines import create_model
from suite.data import Normalizer, load_dataset
from suite.harness import fit
from suite.numerics import autocast, batch_to_memory_format, to_memory_format
from suite.profiles import Recipe

BATCH, LR = 128, 0.01
CASES = {"lenet5": ("synthetic_mnist", 2000, 12), "resnet20": ("synthetic_cifar10", 1024, 1),
         "vgg8": ("synthetic_cifar10", 768, 1)}  # model -> (dataset, images, epochs)


def raw_loop(model, images, labels, epochs: int, precision: str) -> None:
    """The loop a researcher writes by hand: SGD, cross-entropy, the same numerics as the harness."""
    device = torch.device("cpu")
    model = to_memory_format(model, precision).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4, foreach=True)
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), BATCH):
            idx = order[start:start + BATCH]
            with autocast(device, precision):
                loss = F.cross_entropy(model(batch_to_memory_format(images[idx], precision)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("model_name", list(CASES))
def test_training_throughput(benchmark, record_throughput, model_name, precision):
    """pytest-benchmark times `fit`; the raw loop runs just before each fit round (in the untimed setup, timed
    here), so both sides meet the same machine state: this CPU drifts by several percent over seconds."""
    dataset, n, epochs = CASES[model_name]
    data = load_dataset(dataset)
    n = min(n, len(data.train))
    split = data.train.subset(torch.arange(n))
    images = Normalizer(data.info, "cpu")(split.images)
    recipe = Recipe(epochs=epochs, batch_size=BATCH, lr=LR, schedule="constant")
    raw_seconds: list[float] = []

    def model():
        torch.manual_seed(0)
        return create_model(model_name, 10, data.info.in_chans)

    def raw_then_fresh_model():
        m = model()
        start = time.perf_counter()
        raw_loop(m, images, split.labels, epochs, precision)
        raw_seconds.append(time.perf_counter() - start)
        return (model(),), {}

    def run(m):
        fit(m, split, data.info, recipe, progress=False, augment=False, precision=precision)

    benchmark.extra_info.update(model=model_name, precision=precision, images=n * epochs)
    benchmark.pedantic(run, setup=raw_then_fresh_model, rounds=5, warmup_rounds=1)
    record_throughput(model_name, "raw", precision, n * epochs / min(raw_seconds))
    record_throughput(model_name, "fit", precision, n * epochs / benchmark.stats.stats.min)
    benchmark.extra_info.update(raw_images_per_second=n * epochs / min(raw_seconds))
