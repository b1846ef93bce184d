"""Training throughput of the shared harness against a minimal hand-written PyTorch loop, in fp32 and bf16.

    python -m pytest benchmarks/ --benchmark-only          # not part of the CI test run (testpaths = tests)

Same model, batch size, optimizer, data (already in memory) and numerics on both sides; no augmentation
in either, so `fit/raw` shows only what the harness adds (uint8 -> float normalization per batch, the LR
scheduler step, loss/accuracy accumulation, the NaN guard, progress bookkeeping). `fit vs fp32` is the
speed-up of the precision policy. Each case runs one warm-up round and three timed rounds (pytest-benchmark
pedantic mode, a fresh model each round); the summary uses the fastest round.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines import create_model
from suite.data import Normalizer, load_dataset
from suite.harness import fit
from suite.numerics import autocast, batch_to_memory_format, to_memory_format
from suite.profiles import Recipe

BATCH, LR = 128, 0.01
CASES = {"lenet5": ("synthetic_mnist", 6144, 2), "resnet20": ("synthetic_cifar10", 1024, 1),
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
@pytest.mark.parametrize("loop", ["raw", "fit"])
@pytest.mark.parametrize("model_name", list(CASES))
def test_training_throughput(benchmark, record_throughput, model_name, loop, precision):
    dataset, n, epochs = CASES[model_name]
    data = load_dataset(dataset)
    split = data.train.subset(torch.arange(n))
    images = Normalizer(data.info, "cpu")(split.images)
    recipe = Recipe(epochs=epochs, batch_size=BATCH, lr=LR, schedule="constant")

    def fresh_model():
        torch.manual_seed(0)
        return (create_model(model_name, 10, data.info.in_chans),), {}

    def run(model):
        if loop == "raw":
            raw_loop(model, images, split.labels, epochs, precision)
        else:
            fit(model, split, data.info, recipe, progress=False, augment=False, precision=precision)

    benchmark.extra_info.update(model=model_name, loop=loop, precision=precision, images=n * epochs)
    benchmark.pedantic(run, setup=fresh_model, rounds=3, warmup_rounds=1)
    record_throughput(model_name, loop, precision, n * epochs / benchmark.stats.stats.min)
