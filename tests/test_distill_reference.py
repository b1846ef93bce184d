"""Every distiller the suite shares with mdistiller (and CC, AB, FSP, KDSVD with RepDistiller), against
the reference's own code (vendored snapshots, see tests/reference.py).

Compared: the distillation loss (mdistiller's `loss_kd` from its distiller's `forward_train`, or
RepDistiller's loss module) and its gradient with respect to every student parameter, for the same
student (ResNet8) and teacher (ResNet14) on the same batch, with the same weights in every extra module
(copied from the reference's) and BatchNorm statistics made non-trivial first, all in float64 (in
float32 the references' own formulas lose digits -- mdistiller's pairwise distances by cancellation,
PKT's near-uniform similarities -- and differ from each other's by up to 1e-2 relative). Agreement: to
1e-5 of the loss, and of the largest gradient entry.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from baselines import create_model
from suite.harness import Step
from suite.plugins import get_method
from tests.reference import import_reference

EPOCH, EPOCHS = 5, 240  # warm-ups (DKD, ReviewKD) at 5/20 in both


def randomize_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=generator) + 0.5
            m.bias.data = torch.randn(c, generator=generator) * 0.5
            m.running_mean = torch.randn(c, generator=generator) * 0.1
            m.running_var = torch.rand(c, generator=generator) + 0.5


def setup(n_data: int = 64):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    student, teacher = create_model("resnet8", num_classes=100), create_model("resnet14", num_classes=100)
    randomize_batchnorm(student, g)
    randomize_batchnorm(teacher, g)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    x = torch.randn(16, 3, 32, 32, generator=g)
    y = torch.randint(0, 100, (16,), generator=g)
    labels = torch.randint(0, 100, (n_data,), generator=g)
    labels[torch.arange(16) * 4] = y  # the batch is samples 0, 4, 8, ... of a small training set
    index = torch.arange(16) * 4
    return student, teacher, x, y, labels, index


def in_float64(*modules):
    """Extra modules are built in float32 (they probe the models with float32 inputs), then everything
    moves to float64."""
    return [m.double() if m is not None else None for m in modules]


def context(name: str, labels: torch.Tensor, **params):
    method = get_method(name)
    info = SimpleNamespace(in_chans=3, image_size=32, num_classes=100)
    ctx = SimpleNamespace(info=info, device="cpu", params=method.make_params({"teacher": "resnet14", **params}),
                          spec=SimpleNamespace(model="resnet8", seed=0), train=SimpleNamespace(labels=labels))
    return method, ctx


def ours(method, ctx, student, teacher, x, y, index, extra):
    s = student.forward_with_features(x)
    with torch.no_grad():
        t = teacher.forward_with_features(x)
    return sum(method.loss_terms(ctx.params, s, t, y, extra, Step(EPOCH, EPOCHS, index)).values())


def assert_same(loss_ref, loss_ours, student):
    params = [p for p in student.parameters()]
    g_ref = torch.autograd.grad(loss_ref, params, allow_unused=True, retain_graph=True)
    g_ours = torch.autograd.grad(loss_ours, params, allow_unused=True)
    rel_loss = (abs(loss_ref.item() - loss_ours.item()) / max(abs(loss_ref.item()), 1e-12))
    assert loss_ref.item() != 0 and rel_loss <= 1e-5, (loss_ref.item(), loss_ours.item())
    scale = max(g.abs().max().item() for g in g_ref if g is not None)
    worst = max(((a if a is not None else 0) - (b if b is not None else 0)).abs().max().item()
                if (a is not None or b is not None) else 0.0 for a, b in zip(g_ref, g_ours))
    assert scale > 0 and worst <= 1e-5 * scale, (worst, scale)
    return rel_loss, worst / scale


# --- mdistiller ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def md():
    import_reference("mdistiller", "mdistiller")
    from suite.mdistiller_adapter import MdistillerModel, default_config

    distillers = import_reference("mdistiller.distillers", "mdistiller")
    return SimpleNamespace(distillers=distillers, wrap=MdistillerModel, config=default_config)


def copy_extra(name, ref, extra):
    """The reference's extra-module weights into the suite's."""
    if name == "fitnet":
        extra[0].load_state_dict(ref.conv_reg.conv.state_dict())
        extra[1].load_state_dict(ref.conv_reg.bn.state_dict())
    elif name == "vid":
        for ours_, theirs in zip(extra, ref.regressors):
            ours_.mean.load_state_dict(theirs.state_dict())
    elif name == "ofd":
        extra.connectors.load_state_dict(ref.connectors.connectors.state_dict())
        for a, b in zip(extra.margins, ref.margins):
            torch.testing.assert_close(a, b.to(a))  # the margins are computed, not copied
    elif name == "reviewkd":
        extra.abfs.load_state_dict(ref.abfs.state_dict())
    elif name == "crd":
        extra.embed_s.linear.load_state_dict(ref.embed_s.linear.state_dict())
        extra.embed_t.linear.load_state_dict(ref.embed_t.linear.state_dict())
        extra.banks.student_bank.copy_(ref.contrast.memory_v1)
        extra.banks.teacher_bank.copy_(ref.contrast.memory_v2)


MDISTILLER = {"kd": ("KD", {}), "at": ("AT", {}), "nst": ("NST", {}), "pkt": ("PKT", {}), "sp": ("SP", {}),
              "rkd": ("RKD", {}), "fitnet": ("FITNET", {}), "vid": ("VID", {}), "ofd": ("OFD", {}),
              "dkd": ("DKD", {}),
              "reviewkd": ("REVIEWKD", {"REVIEWKD.IN_CHANNELS": [16, 32, 64, 64], "REVIEWKD.OUT_CHANNELS": [16, 32, 64, 64],
                                        "REVIEWKD.SHAPES": [1, 8, 16, 32], "REVIEWKD.OUT_SHAPES": [1, 8, 16, 32]}),
              "crd": ("CRD", {"CRD.FEAT.STUDENT_DIM": 64, "CRD.FEAT.TEACHER_DIM": 64, "CRD.NCE.K": 50})}


def compare_with_mdistiller(md, name, monkeypatch=None):
    key, cfg_overrides = MDISTILLER[name]
    student, teacher, x, y, labels, index = setup()
    cfg = md.config()
    for k, v in cfg_overrides.items():
        node, *path = k.split(".")
        target = cfg[node]
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = v
    cls = md.distillers.distiller_dict[key]
    params = {"negatives": 50} if name == "crd" else {}
    method, ctx = context(name, labels, **params)
    if name == "crd":
        ref = cls(md.wrap(student), md.wrap(teacher), cfg, len(labels))
    else:
        ref = cls(md.wrap(student), md.wrap(teacher), cfg)
    extra = method.extra_modules(ctx, student, teacher)
    student, teacher, ref, extra = in_float64(student, teacher, ref, extra)
    x = x.double()
    copy_extra(name, ref, extra)
    kwargs = {}
    if name == "crd":
        state = extra.banks.sampler.bit_generator.state
        kwargs = {"index": index, "contrastive_index": extra.banks.negatives(index, 50)}
        extra.banks.sampler.bit_generator.state = state  # the suite's loss draws the same negatives again
    teacher.eval()
    _, terms = ref.forward_train(image=x, target=y, epoch=EPOCH, **kwargs)
    result = assert_same(terms["loss_kd"], ours(method, ctx, student, teacher, x, y, index, extra), student)
    if name == "crd":  # and both updated their memory banks alike
        torch.testing.assert_close(extra.banks.student_bank, ref.contrast.memory_v1)
        torch.testing.assert_close(extra.banks.teacher_bank, ref.contrast.memory_v2)
    return result


@pytest.mark.parametrize("name", list(MDISTILLER))
def test_distiller_matches_mdistiller(md, name, monkeypatch):
    if name == "crd":  # mdistiller's ContrastMemory moves its sampler to CUDA when built; the test passes indices
        monkeypatch.setattr(sys.modules["mdistiller.distillers.CRD"].AliasMethod, "cuda", lambda self: None)
    compare_with_mdistiller(md, name)


# --- RepDistiller ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo():
    return import_reference("distiller_zoo", "RepDistiller")


def test_cc_matches_repdistiller(zoo):
    student, teacher, x, y, labels, index = setup()
    method, ctx = context("cc", labels)
    student, teacher, extra = in_float64(student, teacher, method.extra_modules(ctx, student, teacher))
    x = x.double()
    s = student.forward_with_features(x)
    with torch.no_grad():
        t = teacher.forward_with_features(x)
    e_s, e_t = extra.student(s.embedding), extra.teacher(t.embedding)
    ref = 0.02 * zoo.Correlation()(e_s, e_t)
    assert_same(ref, ours(method, ctx, student, teacher, x, y, index, extra), student)


def test_fsp_matches_repdistiller(zoo):
    from methods.fsp import fsp_loss

    student, teacher, x, y, labels, index = setup()
    student, teacher = in_float64(student, teacher)
    x = x.double()
    s = student.forward_with_features(x)
    with torch.no_grad():
        t = teacher.forward_with_features(x)
    g_s, g_t = [s.stem, *s.stages], [t.stem, *t.stages]
    ref = sum(zoo.FSP([f.shape for f in g_s], [f.shape for f in g_t])(g_s, g_t))
    assert_same(ref, fsp_loss(student.forward_with_features(x), t), student)


def test_ab_matches_repdistiller(zoo):
    from methods.ab import ab_loss

    student, teacher, x, y, labels, index = setup()
    method, ctx = context("ab", labels)
    student, teacher, connectors = in_float64(student, teacher, method.extra_modules(ctx, student, teacher))
    x = x.double()
    with torch.no_grad():
        t = teacher.forward_with_features(x)
    s = student.forward_with_features(x)
    g_s = [c(f) for c, f in zip(connectors, s.preact)]
    ref = sum(zoo.ABLoss(len(g_s), margin=1.0)(g_s, t.preact))
    s2 = student.forward_with_features(x)
    assert_same(ref, ab_loss([c(f) for c, f in zip(connectors, s2.preact)], t.preact, 1.0), student)


def test_kdsvd_matches_repdistiller(zoo):
    student, teacher, x, y, labels, index = setup()
    method, ctx = context("kdsvd", labels)
    student, teacher = in_float64(student, teacher)
    x = x.double()
    s = student.forward_with_features(x)
    with torch.no_grad():
        t = teacher.forward_with_features(x)
    ref = sum(zoo.KDSVD(k=1)(s.stages, t.stages))
    assert_same(ref, ours(method, ctx, student, teacher, x, y, index, None), student)


def test_dist_matches_its_equations_evaluated_by_scipy():
    """No reference code is vendored for DIST: its Eq. 3-6 evaluated independently with scipy's Pearson r."""
    from methods.dist import dist_loss

    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(16, 10, generator=g, dtype=torch.float64), torch.randn(16, 10, generator=g, dtype=torch.float64)
    ps, pt = (torch.softmax(z / 4, 1).numpy() for z in (zs, zt))
    inter = 1 - np.mean([pearsonr(a, b)[0] for a, b in zip(ps, pt)])
    intra = 1 - np.mean([pearsonr(a, b)[0] for a, b in zip(ps.T, pt.T)])
    expected = 16 * (1.0 * inter + 2.0 * intra)
    assert dist_loss(zs, zt, 1.0, 2.0, 4.0).item() == pytest.approx(expected, rel=1e-6)
