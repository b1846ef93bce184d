"""FT (factor transfer): Kim, Park, Kwak 2018, "Paraphrasing Complex Network: Network Compression via
Factor Transfer".

1. A paraphraser (conv autoencoder) is pre-trained, on its own stage, to reconstruct the teacher's
   last feature map through a bottleneck of k x C channels (rate k = 0.5); its encoder output is the
   teacher factor F_T.
2. A translator (three convs) on the student's last feature map gives the student factor F_S.
3. Loss (their Eq. 3): beta * || F_T/||F_T||_2 - F_S/||F_S||_2 ||_p with p = 1 (mean absolute
   difference of the per-sample L2-normalised factors), plus cross-entropy.
Defaults: k = 0.5, p = 1, beta = 200 (RepDistiller's FT setting); paraphraser pre-training for 1/8 of
the student's epochs (RepDistiller: 30 of 240). The modules are RepDistiller's (`models/util.py`, as its
`train_student.py` builds them): the paraphraser has no BatchNorm (`Paraphraser(use_bn=False)`; the
authors' code has its BN lines commented out), the translator has BatchNorm (`Translator(use_bn=True)`);
the factor has int(k x C) channels. The paraphraser pre-trains at RepDistiller's `helper/pretrain.py` lr:
0.01 when the student is a CIFAR ResNet / WRN, else the student recipe's lr (`paraphraser_lr` > 0 sets
it), with the recipe's optimizer, momentum and weight decay like the reference's `init`; one departure: the
recipe's lr schedule applies (the reference keeps the lr constant over its 30 pre-training epochs). The factor is flattened as the paper's Eq. 3 writes it
(so does mmrazor's FTLoss); RepDistiller's FactorTransfer loss first averages squared channels into
one map, which is a different, attention-like factor. When the two factor maps differ in size, the
larger is average-pooled to the smaller.
"""
from __future__ import annotations

import re
from typing import ClassVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.distill import Distiller, Features, TeacherParams, pool_to_common_size, stage_shapes
from suite.modes import eval_mode
from suite.plugins import AT_LEAST_1, NON_NEGATIVE, POSITIVE, register_method


def _conv(cin: int, cout: int, transpose: bool = False, bn: bool = True) -> list[nn.Module]:
    conv = nn.ConvTranspose2d(cin, cout, 3, padding=1) if transpose else nn.Conv2d(cin, cout, 3, padding=1)
    return [conv, *([nn.BatchNorm2d(cout)] if bn else []), nn.LeakyReLU(0.1, inplace=True)]


class Paraphraser(nn.Module):
    def __init__(self, channels: int, rate: float) -> None:
        super().__init__()
        factor = max(1, int(channels * rate))
        self.factor_channels = factor
        self.encoder = nn.Sequential(*_conv(channels, channels, bn=False), *_conv(channels, factor, bn=False),
                                     *_conv(factor, factor, bn=False))
        self.decoder = nn.Sequential(*_conv(factor, factor, True, bn=False), *_conv(factor, channels, True, bn=False),
                                     *_conv(channels, channels, True, bn=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def translator(student_channels: int, factor_channels: int) -> nn.Module:
    return nn.Sequential(*_conv(student_channels, student_channels), *_conv(student_channels, factor_channels),
                         *_conv(factor_channels, factor_channels))


def factor_transfer_loss(student_factor: torch.Tensor, teacher_factor: torch.Tensor, p: int = 1) -> torch.Tensor:
    student_factor, teacher_factor = pool_to_common_size(student_factor, teacher_factor)
    diff = F.normalize(student_factor.flatten(1)) - F.normalize(teacher_factor.flatten(1))
    return diff.abs().pow(p).mean()


@dataclass(frozen=True)
class FTParams(TeacherParams):
    ranges: ClassVar[dict[str, str]] = {"rate": POSITIVE, "p": AT_LEAST_1, "beta": NON_NEGATIVE, "paraphraser_epochs_fraction": NON_NEGATIVE, "paraphraser_lr": NON_NEGATIVE}
    rate: float = 0.5
    p: int = 1
    beta: float = 200.0
    paraphraser_epochs_fraction: float = 0.125
    paraphraser_lr: float = 0.0  # 0 = RepDistiller's rule (0.01 for CIFAR ResNet / WRN students, else the recipe's)


CIFAR_RESNET = re.compile(r"(resnet(8|14|20|32|44|56|110)(x4)?|wrn_\d+_\d+)")  # RepDistiller's list in `init`


def paraphraser_lr(params: FTParams, student_model: str, recipe_lr: float) -> float:
    if params.paraphraser_lr > 0:
        return params.paraphraser_lr
    return 0.01 if CIFAR_RESNET.fullmatch(student_model) else recipe_lr


@torch.no_grad()
def paraphraser_error(para: Paraphraser, teacher: nn.Module, split, ctx) -> float:
    """Mean squared reconstruction error of the teacher's last feature map on a fixed probe set."""
    from suite.data import iterate_batches

    with eval_mode(para):
        errors = [F.mse_loss(para(f), f).item() for f in
                  (teacher.forward_features(x) for x, _ in iterate_batches(split.to(ctx.device), ctx.info, 256,
                                                                          shuffle=False, augment=False))]
    return sum(errors) / len(errors)


class FTModules(nn.Module):
    def __init__(self, paraphraser: Paraphraser, translator: nn.Module) -> None:
        super().__init__()
        self.paraphraser = paraphraser
        self.translator = translator


@register_method
class FT(Distiller):
    name = "ft"
    version = "2"  # 2: RepDistiller's BN-free paraphraser and its pre-training lr (1 had BN, the recipe's lr)
    label = "FT (factor transfer)"
    Params = FTParams
    description = "factor transfer: paraphrased teacher factors matched by a student translator"

    def extra_modules(self, ctx, student, teacher):
        cs, ct = stage_shapes(student, ctx.info, ctx.device)[-1][0], stage_shapes(teacher, ctx.info, ctx.device)[-1][0]
        para = Paraphraser(ct, ctx.params.rate)
        return FTModules(para, translator(cs, para.factor_channels))

    def prepare(self, ctx, student, teacher, extra):
        """Pre-train the paraphraser on the teacher's last feature map (its own checkpointed stage)."""
        para = extra.paraphraser

        def reconstruction(model, x, y, step):
            with torch.no_grad():
                features = teacher.forward_features(x)
            return None, {"reconstruction": F.mse_loss(model(features), features)}

        probe = ctx.train.subset(torch.arange(min(512, len(ctx.train))))
        before = paraphraser_error(para, teacher, probe, ctx)
        lr = paraphraser_lr(ctx.params, ctx.spec.model, ctx.recipe.lr)
        ctx.fit(para, losses=reconstruction, recipe=ctx.recipe.scaled(ctx.params.paraphraser_epochs_fraction, lr=lr),
                stage="paraphraser")
        ctx.record(paraphraser_mse_before=before, paraphraser_mse_after=paraphraser_error(para, teacher, probe, ctx))

    def frozen(self, extra):  # the one way to freeze: ctx.fit keeps it out of the optimizer and in eval mode
        return extra.paraphraser

    def loss_terms(self, params: FTParams, s: Features, t: Features, y, extra, step):
        with torch.no_grad():
            teacher_factor = extra.paraphraser.encoder(t.stages[-1])
        student_factor = extra.translator(s.stages[-1])
        return {"ft": params.beta * factor_transfer_loss(student_factor, teacher_factor, params.p)}
