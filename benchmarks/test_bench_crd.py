"""CRD's contrast scores: the suite's (one product with the whole bank) against mdistiller's `ContrastMemory`.

    python -m pytest benchmarks/test_bench_crd.py --benchmark-only -n 0     # not part of the CI test run

One forward and backward pass of both memory banks' scores at the kd table's sizes: a batch of 64, K = 16384
negatives, a 20,000-image training split, 128 dimensions, fp32 (CRD's loss runs outside autocast), one thread.
mdistiller (the vendored snapshot, `../shared/vendor/mdistiller` or `$SUITE_VENDOR`) gathers each sample's
K + 1 bank rows into a (64, 16385, 128) tensor per bank and batch; the suite multiplies by the whole bank and
picks each row's K + 1 scores. Both sides take the same indices and banks, and the benchmark first checks that
they give the same scores and gradients (to float rounding), so the timing compares one computation.
"""
from __future__ import annotations

import sys

import pytest
import torch

from methods.crd import contrast_scores
from tests.reference import import_reference

BATCH, K, N, DIM, T = 64, 16384, 20_000, 128, 0.07


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    banks = [torch.nn.functional.normalize(torch.randn(N, DIM, generator=g), dim=1) for _ in range(2)]
    v = [torch.nn.functional.normalize(torch.randn(BATCH, DIM, generator=g), dim=1) for _ in range(2)]
    idx = torch.randint(0, N, (BATCH, K + 1), generator=g)
    return banks, v, idx


def suite_scores(banks, v1, v2, idx):
    return contrast_scores(v1, banks[1], idx, T), contrast_scores(v2, banks[0], idx, T)


def mdistiller_memory(banks, monkeypatch):
    crd = import_reference("mdistiller.distillers.CRD", "mdistiller")
    monkeypatch.setattr(sys.modules["mdistiller.distillers.CRD"].AliasMethod, "cuda", lambda self: None)
    memory = crd.ContrastMemory(DIM, N, K, T=T)
    memory.memory_v1.copy_(banks[0])
    memory.memory_v2.copy_(banks[1])
    memory.params[2:4] = 1.0  # normalisers fixed, so both sides return the raw exp scores
    memory.params[4] = 1.0  # momentum 1: the banks stay as they are from round to round
    return memory


def forward_backward(scores_of, v):
    v1, v2 = (x.clone().requires_grad_() for x in v)
    out_v1, out_v2 = scores_of(v1, v2)
    (out_v1.log().sum() + out_v2.log().sum()).backward()
    return out_v1.detach().reshape(BATCH, -1), out_v2.detach().reshape(BATCH, -1), v1.grad, v2.grad


@pytest.mark.parametrize("side", ["suite", "mdistiller"])
def test_crd_contrast_scores(benchmark, inputs, side, monkeypatch):
    torch.set_num_threads(1)
    banks, v, idx = inputs

    def sides(banks, v):
        memory = mdistiller_memory(banks, monkeypatch).to(banks[0].dtype)
        return {"suite": lambda v1, v2: suite_scores(banks, v1, v2, idx),
                "mdistiller": lambda v1, v2: memory(v1, v2, idx[:, 0], idx)}

    # the same computation: equal in float64 (in fp32 the gradients, sums of 16385 rows, differ by rounding)
    exact = sides([b.double() for b in banks], None)
    v64 = [x.double() for x in v]
    for a, b in zip(forward_backward(exact["suite"], v64), forward_backward(exact["mdistiller"], v64)):
        torch.testing.assert_close(a, b)
    benchmark.pedantic(forward_backward, args=(sides(banks, v)[side], v), rounds=5, warmup_rounds=1)
