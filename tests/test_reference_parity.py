"""Whole-method parity with the authors' code: each test builds the suite's method the way a cell does and
compares it with the reference modules built the way the reference's own training script builds them.

- CC: the full head (embeddings + correlation) against RepDistiller's `LinearEmbed` + `Correlation`, weights copied.
- CRD: the negative sampler draws K distinct negatives of other classes when they fit (RepDistiller's and
  mdistiller's `np.random.choice(..., replace=K > pool)`).
- FT: the paraphraser's and translator's layers against RepDistiller's `Paraphraser()` / `Translator()` (its
  `train_student.py` defaults), outputs equal with copied weights; the pre-training lr of `helper/pretrain.py`.
- FitNet: the hinted stage's shape per model family against mdistiller's models at `FITNET.HINT_LAYER`.
- Pruning: masks against ShrinkBench's `GlobalMagWeight` / `LayerMagWeight` with the classifier exempt, and the
  whole-model compression ShrinkBench's `model_size` measures.
"""
from __future__ import annotations

import copy
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from baselines import create_model
from suite.plugins import get_method
from tests.reference import assert_close_to_scale, import_reference, vendor_dir


def _ctx(name: str, **params):
    method = get_method(name)
    info = SimpleNamespace(in_chans=3, image_size=32, num_classes=100)
    return method, SimpleNamespace(info=info, device="cpu", params=method.make_params({"teacher": "resnet14", **params}),
                                   spec=SimpleNamespace(model="resnet8", seed=0))


def _with_extra(method, ctx):
    """Student, teacher and the method's extra modules, built in float32 (they probe the models with float32
    inputs), then all in float64."""
    torch.manual_seed(0)
    student, teacher = create_model("resnet8", num_classes=100), create_model("resnet14", num_classes=100).eval()
    extra = method.extra_modules(ctx, student, teacher)
    return student.double(), teacher.double(), extra.double()


@pytest.fixture(scope="module")
def rep_util():
    import_reference("distiller_zoo", "RepDistiller")
    return import_reference("models.util", "RepDistiller")


# --- CC --------------------------------------------------------------------------------------------------
def test_cc_head_is_repdistillers_linear_embed_and_correlation(rep_util):
    zoo = import_reference("distiller_zoo", "RepDistiller")
    method, ctx = _ctx("cc")
    student, teacher, extra = _with_extra(method, ctx)
    embed_s, embed_t = rep_util.LinearEmbed(64, 128).double(), rep_util.LinearEmbed(64, 128).double()
    embed_s.linear.load_state_dict(extra.student.linear.state_dict())
    embed_t.linear.load_state_dict(extra.teacher.linear.state_dict())
    x = torch.randn(16, 3, 32, 32, dtype=torch.float64)
    s, t = student.forward_with_features(x), teacher.forward_with_features(x)
    ref = 0.02 * zoo.Correlation()(embed_s(s.embedding), embed_t(t.embedding))  # train_student.py's -b 0.02
    ours = method.loss_terms(ctx.params, s, t, None, extra, None)["cc"]
    assert ref.item() != 0 and abs(ours.item() - ref.item()) <= 1e-9 * abs(ref.item()), (ours.item(), ref.item())


# --- CRD -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(2000, 1500), (300, 1000)])
def test_crd_draws_distinct_negatives_of_other_classes_when_they_fit(n, k):
    from methods.crd import ContrastBanks

    labels = torch.arange(n) % 10
    banks = ContrastBanks(labels, 8, seed=0)
    index = torch.tensor([0, 7, 123, n - 1])
    sample = banks.negatives(index, k)
    assert sample.shape == (4, k + 1) and torch.equal(sample[:, 0], index)
    for row, i in zip(sample, index):
        negatives = row[1:]
        assert (labels[negatives] != labels[i]).all()
        pool = int((labels != labels[i]).sum())
        distinct = len(torch.unique(negatives))
        if pool >= k:  # the reference: np.random.choice(pool, k, replace=False)
            assert distinct == k
        else:  # replace=True: k draws from a pool smaller than k
            assert distinct <= pool


# --- FT --------------------------------------------------------------------------------------------------
def _layer_kinds(module: nn.Module) -> list[tuple[str, tuple]]:
    """The layers that compute something, in order, with their shapes (RepDistiller's empty `nn.Sequential()`
    stand-ins for a missing BN left out)."""
    out = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("BatchNorm2d", (m.num_features,)))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("LeakyReLU", (m.negative_slope,)))
    return out


def test_ft_modules_are_repdistillers_paraphraser_and_translator(rep_util):
    method, ctx = _ctx("ft")
    student, teacher, extra = _with_extra(method, ctx)
    t_shape, s_shape = (2, 64, 8, 8), (2, 64, 8, 8)  # feat_t[-2], feat_s[-2] of resnet14 / resnet8
    para, trans = rep_util.Paraphraser(t_shape).double(), rep_util.Translator(s_shape, t_shape).double()
    assert _layer_kinds(extra.paraphraser) == _layer_kinds(para)
    assert _layer_kinds(extra.translator) == _layer_kinds(trans)
    for ours, theirs in ((extra.paraphraser, para), (extra.translator, trans)):
        src = [p for p in theirs.state_dict().values()]
        dst = ours.state_dict()
        assert [v.shape for v in dst.values()] == [v.shape for v in src]
        ours.load_state_dict(dict(zip(dst, src)))
    f = torch.randn(4, 64, 8, 8, dtype=torch.float64)
    para.eval(), trans.eval(), extra.eval()
    factor, rec = para(f)
    assert_close_to_scale(extra.paraphraser.encoder(f), factor)
    assert_close_to_scale(extra.paraphraser(f), rec)
    assert_close_to_scale(extra.translator(f), trans(f))


def test_ft_pretrains_its_paraphraser_at_repdistillers_lr():
    """helper/pretrain.py: lr 0.01 for a CIFAR ResNet / WRN student under `factor`, else the student's lr."""
    from methods.ft import FTParams, paraphraser_lr

    text = (vendor_dir() / "RepDistiller" / "helper" / "pretrain.py").read_text() if vendor_dir() else ""
    if "lr = 0.01" not in text:
        pytest.skip("RepDistiller's helper/pretrain.py not found")
    for model in ("resnet8", "resnet20", "resnet56", "resnet110", "resnet8x4", "resnet32x4", "wrn_40_2"):
        assert model in text and paraphraser_lr(FTParams(), model, 0.05) == 0.01
    for model in ("vgg8", "mobilenetv2", "resnet18"):
        assert paraphraser_lr(FTParams(), model, 0.05) == 0.05
    assert paraphraser_lr(FTParams(paraphraser_lr=0.2), "resnet20", 0.05) == 0.2


# --- FitNet ----------------------------------------------------------------------------------------------
FITNET_FAMILIES = {  # suite model -> mdistiller constructor (its CIFAR model zoo)
    "resnet20": lambda m: m.resnet20(num_classes=100),
    "resnet8x4": lambda m: m.resnet8x4(num_classes=100),
    "vgg8": lambda m: m.vgg8_bn(num_classes=100),
    "vgg13": lambda m: m.vgg13_bn(num_classes=100),
    "resnet18": lambda m: m.ResNet18(num_classes=100),
    "resnet50": lambda m: m.ResNet50(num_classes=100),
    "mobilenetv2": lambda m: sys.modules[m.__name__ + ".mobilenetv2"].mobilenetv2_T_w(6, 1.0, 100),
}


@pytest.mark.parametrize("model", list(FITNET_FAMILIES))
def test_fitnet_hints_the_stage_mdistiller_hints(model, capsys):
    models = import_reference("mdistiller.models.cifar", "mdistiller")
    from methods.fitnet import hint_index
    from suite.mdistiller_adapter import default_config

    cfg = default_config()

    torch.manual_seed(0)
    reference = FITNET_FAMILIES[model](models).eval()
    ours = create_model(model, num_classes=100).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, feats = reference(x)
        stages = ours.forward_stages(x)
    at = hint_index(get_method("fitnet").make_params({}), ours)
    hint = feats["feats"][cfg.FITNET.HINT_LAYER].shape
    if model == "mobilenetv2":  # the same block group; mdistiller's stem strides by 2, the suite's CIFAR stem not
        assert stages[at].shape[:2] == hint[:2] and stages[at].shape[2] == 2 * hint[2]
    else:
        assert stages[at].shape == hint


@pytest.mark.parametrize("model,expected", [("lenet5", (16, 5, 5)), ("alexnet", (192, 8, 8))])
def test_fitnet_hint_of_models_no_reference_ships_is_their_second_stage(model, expected):
    from methods.fitnet import hint_index

    net = create_model(model, num_classes=10, in_chans=1 if model == "lenet5" else 3)
    x = torch.zeros(2, 1 if model == "lenet5" else 3, 28 if model == "lenet5" else 32, 28 if model == "lenet5" else 32)
    at = hint_index(get_method("fitnet").make_params({}), net)
    assert at == 1 and tuple(net.forward_stages(x)[at].shape[1:]) == expected


# --- pruning ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shrinkbench():
    import_reference("numpy", "shrinkbench")  # skips when the snapshot is missing
    root = vendor_dir()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import shrinkbench.metrics
    import shrinkbench.strategies

    return shrinkbench


def _trained_like_resnet20() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    for m in model.modules():  # non-zero BN shifts, as after training (BN biases start at zero)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
    return model


@pytest.mark.parametrize("scope,strategy", [("global", "GlobalMagWeight"), ("layer", "LayerMagWeight")])
@pytest.mark.parametrize("ratio", [2, 8, 32])
def test_magnitude_masks_equal_shrinkbench_with_the_classifier_exempt(shrinkbench, scope, strategy, ratio):
    from methods.prune import bake_masks, prune_to
    from suite.compress import prunable_layers, sparsity_for_compression

    model = _trained_like_resnet20()
    theirs = copy.deepcopy(model)
    theirs.head.fc.is_classifier = True  # how ShrinkBench's own CIFAR models mark it
    pruning = getattr(shrinkbench.strategies, strategy)(theirs, compression=ratio)
    their_masks = pruning.model_masks()
    by_name = {id(m): n for n, m in theirs.named_modules()}
    their_masks = {by_name[id(m)]: masks["weight"] for m, masks in their_masks.items()}

    sparsity = sparsity_for_compression(model, ratio)
    assert 1 - sparsity == pytest.approx(pruning.fraction, rel=1e-9)  # ShrinkBench's fraction_to_keep
    prune_to(model, sparsity, scope)
    ours = {name: m.weight_mask.numpy() for name, m in prunable_layers(model)}
    assert set(ours) == set(their_masks) and "head.fc" not in ours
    differ = {name: int((ours[name] != their_masks[name]).sum()) for name in ours}
    # identical but for the quantile's interpolation at the threshold: at most one weight per ranking
    assert (sum(differ.values()) <= 1) if scope == "global" else max(differ.values()) <= 1, differ
    bake_masks(model)
    assert not (model.head.fc.weight == 0).any()
    total, nonzero = shrinkbench.metrics.model_size(model)
    assert total / nonzero == pytest.approx(ratio, rel=0.01)


def test_prune_classifier_option_prunes_it():
    from methods.prune import bake_masks, prune_to

    model = _trained_like_resnet20()
    prune_to(model, 0.9, "layer", include_classifier=True)
    bake_masks(model)
    assert float((model.head.fc.weight == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
