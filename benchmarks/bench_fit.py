#!/usr/bin/env python3
"""Overhead of the shared harness: `fit` throughput / a minimal hand-written PyTorch loop.

Same model, batch size, optimizer and data (normalized tensors already in memory); no augmentation
in either, so the ratio shows only what the harness adds (uint8 -> float normalization per batch,
LR scheduler step, loss/accuracy accumulation, NaN guard, progress bookkeeping).
Each side runs `--repeats` times, interleaved; the best run of each is compared.

    python benchmarks/bench_fit.py            # prints img/s of both and the ratio (target >= 0.95 on CPU)
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from baselines import create_model
from suite.data import Normalizer, iterate_batches, load_dataset
from suite.harness import fit
from suite.profiles import Recipe


def hand_loop(model, images, labels, batch_size, epochs, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, foreach=True)
    model.train()
    n = len(labels)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return n * epochs / (time.perf_counter() - t0)


def harness(model, split, info, batch_size, epochs, lr):
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, schedule="constant")
    result = fit(model, split, info, recipe, progress=False, augment=False)
    return result.images_per_second


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cases = [("lenet5", "synthetic_mnist", 2000, 4, 128), ("resnet20", "synthetic_cifar10", 512, 1, 128)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for model_name, dataset, n, epochs, bs in cases:
        data = load_dataset(dataset)
        split = data.train.subset(torch.arange(n))
        images = Normalizer(data.info, "cpu")(split.images)
        best_hand, best_fit = 0.0, 0.0
        for _ in range(args.repeats):
            torch.manual_seed(0)
            best_hand = max(best_hand, hand_loop(create_model(model_name, 10, data.info.in_chans), images, split.labels, bs, epochs, 0.01))
            torch.manual_seed(0)
            best_fit = max(best_fit, harness(create_model(model_name, 10, data.info.in_chans), split, data.info, bs, epochs, 0.01))
        print(f"{model_name:9s} batch {bs}: hand loop {best_hand:8.0f} img/s | fit {best_fit:8.0f} img/s | ratio {best_fit / best_hand:.3f}")


if __name__ == "__main__":
    main()
