"""CRD: Tian, Krishnan, Isola 2020, "Contrastive Representation Distillation".

Student and teacher embeddings are projected (linear, L2-normalised) to 128 dimensions; two memory banks
over the training set hold a momentum average (0.5) of each sample's student and teacher projection.
For every sample, its own entry is the positive and K = 16384 entries of other classes' samples are the
negatives (mdistiller's and RepDistiller's "exact" sampling: `np.random.choice(other classes' indices, K,
replace=K > their number)`, i.e. K distinct negatives whenever the other classes hold at least K samples,
drawn with replacement only when they do not, as on a 10,000-image CIFAR-10 subset); scores exp(v . m / T), T = 0.07, divided
by a normaliser Z fixed at the first batch (mean score x N); the NCE loss (their Eq. 18) is taken both
ways (student vs teacher bank and teacher vs student bank). Defaults (mdistiller's CRD config): weight
0.8, CE 1.0. The harness gives each batch's positions in the training split (`Step.index`). Tested
against mdistiller's `ContrastMemory` / `ContrastLoss` with the same indices.
"""
from __future__ import annotations

import math
from typing import ClassVar
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from methods.cc import Embed
from suite.distill import Distiller, Features, TeacherParams, at_least_fp32
from suite.plugins import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, register_method

EPS = 1e-7


class ContrastBanks(nn.Module):
    def __init__(self, labels: torch.Tensor, dim: int, seed: int) -> None:
        super().__init__()
        n = len(labels)
        stdv = 1.0 / math.sqrt(dim / 3)
        init = torch.Generator().manual_seed(seed)
        self.register_buffer("student_bank", torch.rand(n, dim, generator=init) * 2 * stdv - stdv)
        self.register_buffer("teacher_bank", torch.rand(n, dim, generator=init) * 2 * stdv - stdv)
        self.register_buffer("z", torch.full((2,), -1.0))  # normalisers, set by the first batch
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.register_buffer("by_class", order)
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts)
        self.register_buffer("class_count", counts)
        self.register_buffer("labels", labels.clone())
        self.sampler = np.random.default_rng(seed + 1)

    def negatives(self, index: torch.Tensor, k: int) -> torch.Tensor:
        """(B, k+1) indices: each sample's own, then k drawn uniformly from the other classes' samples --
        without replacement when they number at least k (the reference's rule), with replacement otherwise."""
        y = self.labels[index]
        start, count = self.class_start[y], self.class_count[y]
        pools = (len(self.labels) - count).tolist()  # how many samples the other classes hold, per row
        # numpy's Generator.choice draws k distinct of 50,000 in well under a millisecond (a torch.randperm of the
        # whole pool per row cost about 10x more here)
        r = torch.from_numpy(np.stack([self.sampler.choice(pool, k, replace=pool < k) for pool in pools]))
        r = r.to(index.device)
        r = r + count[:, None] * (r >= start[:, None])  # skip over the sample's own class
        return torch.cat([index[:, None], self.by_class[r]], dim=1)


def contrast_scores(v: torch.Tensor, bank: torch.Tensor, sample: torch.Tensor, temperature: float) -> torch.Tensor:
    """exp(v_b . bank[sample[b, j]] / T), (B, k+1). The reference gathers the (B, k+1, dim) slice of the bank and
    multiplies it (a 537 MB copy per bank and batch at k = 16384, and as much again in the backward pass); one
    (B, N) product with the whole bank, then picking each row's k+1, gives the same dot products (to float
    rounding) from a few MB: about 50x faster per loss on CPU, so CRD trains at nearly a plain student's cost. The
    product keeps a copy of the bank (N x dim) for its backward pass: the bank is updated in place before it."""
    return torch.exp(torch.gather(v @ bank.detach().clone().t(), 1, sample) / temperature)


def nce_loss(scores: torch.Tensor, n_data: int) -> torch.Tensor:
    m, noise = scores.shape[1] - 1, 1.0 / n_data
    positive = torch.log(scores[:, 0] / (scores[:, 0] + m * noise + EPS))
    negative = torch.log((m * noise) / (scores[:, 1:] + m * noise + EPS))
    return -(positive.sum() + negative.sum()) / scores.shape[0]


def crd_loss(e_s: torch.Tensor, e_t: torch.Tensor, index: torch.Tensor, sample: torch.Tensor, banks: ContrastBanks,
             temperature: float, momentum: float) -> torch.Tensor:
    n = banks.student_bank.shape[0]
    out_s = contrast_scores(e_s, banks.teacher_bank, sample, temperature)  # student vs the teacher bank
    out_t = contrast_scores(e_t, banks.student_bank, sample, temperature)
    if banks.z[0] < 0:
        banks.z.copy_(torch.stack([out_s.mean().detach() * n, out_t.mean().detach() * n]))
    loss = nce_loss(out_s / banks.z[0], n) + nce_loss(out_t / banks.z[1], n)
    with torch.no_grad():
        for bank, v in ((banks.student_bank, e_s), (banks.teacher_bank, e_t)):
            bank.index_copy_(0, index, nn.functional.normalize(bank[index] * momentum + v.detach() * (1 - momentum),
                                                              dim=1))
    return loss


class CRDModules(nn.Module):
    def __init__(self, student_dim: int, teacher_dim: int, dim: int, labels: torch.Tensor, seed: int) -> None:
        super().__init__()
        self.embed_s = Embed(student_dim, dim)
        self.embed_t = Embed(teacher_dim, dim)
        self.banks = ContrastBanks(labels, dim, seed)


@dataclass(frozen=True)
class CRDParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"weight": NON_NEGATIVE, "dim": AT_LEAST_1, "negatives": AT_LEAST_1, "temperature": POSITIVE, "momentum": FRACTION}
    weight: float = 0.8
    dim: int = 128
    negatives: int = 16384
    temperature: float = 0.07
    momentum: float = 0.5


@register_method
class CRD(Distiller):
    name = "crd"
    version = "3"  # 3: scores from one product with the whole bank (same numbers to float rounding, ~50x faster);
    # 2: distinct negatives when they fit, as the reference (1 drew with replacement)
    label = "CRD"
    Params = CRDParams
    description = "contrastive representation distillation with memory banks over the training set"

    def extra_modules(self, ctx, student, teacher):
        return CRDModules(student.head.num_features, teacher.head.num_features, ctx.params.dim,
                          ctx.train.labels.cpu(), ctx.spec.seed)

    def loss_terms(self, params: CRDParams, s: Features, t: Features, y, extra, step):
        with torch.autocast(s.logits.device.type, enabled=False):  # exp(x / 0.07) wants fp32
            e_s, e_t = extra.embed_s(at_least_fp32(s.embedding)), extra.embed_t(at_least_fp32(t.embedding))
            sample = extra.banks.negatives(step.index, params.negatives)
            return {"crd": params.weight * crd_loss(e_s, e_t, step.index, sample, extra.banks, params.temperature,
                                                    params.momentum)}
