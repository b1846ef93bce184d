"""The suite's CIFAR models against mdistiller's own (`mdistiller.models.cifar`, vendored snapshot).

Compared: parameter count, the shape of every feature map mdistiller exposes (`feats`, `preact_feats`,
`pooled_feat`) at 32x32, and -- after copying mdistiller's weights into the suite's model entry by
entry -- the logits, the stage outputs, the pre-activation outputs and the BatchNorms before ReLU.
"""
import pytest
import torch

from baselines import create_model
from tests.reference import assert_close_to_scale, copy_state_in_order, import_reference

PAIRS = {"resnet8": "resnet8", "resnet14": "resnet14", "resnet20": "resnet20", "resnet32": "resnet32",
         "resnet44": "resnet44", "resnet56": "resnet56", "resnet110": "resnet110", "resnet8x4": "resnet8x4",
         "resnet32x4": "resnet32x4", "vgg8": "vgg8_bn", "vgg11": "vgg11_bn", "vgg13": "vgg13_bn",
         "vgg16": "vgg16_bn"}


@pytest.fixture(scope="module")
def cifar_models():
    return import_reference("mdistiller.models.cifar", "mdistiller")


@pytest.mark.parametrize("ours,theirs", PAIRS.items())
def test_model_matches_mdistiller(cifar_models, ours, theirs):
    torch.manual_seed(0)
    reference = getattr(cifar_models, theirs)(num_classes=100).eval()
    model = create_model(ours, num_classes=100).eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    copy_state_in_order(reference, model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, feats = reference(x)
        f = model.forward_with_features(x)
    assert [t.shape for t in [f.stem, *f.stages]] == [t.shape for t in feats["feats"]]
    assert_close_to_scale(f.logits, logits)
    assert_close_to_scale(f.embedding, feats["pooled_feat"])
    for ours_, theirs_ in zip([f.stem, *f.stages], feats["feats"]):
        assert_close_to_scale(ours_, theirs_)
    for ours_, theirs_ in zip(f.preact, feats["preact_feats"][1:]):
        assert_close_to_scale(ours_, theirs_)
    names = {id(m): n for n, m in model.named_modules()}
    reference_names = {id(m): n for n, m in reference.named_modules()}
    ours_bn = [list(model.state_dict()).index(names[id(bn)] + ".weight") for bn in model.bn_before_relu()]
    theirs_bn = [list(reference.state_dict()).index(reference_names[id(bn)] + ".weight")
                 for bn in reference.get_bn_before_relu()]
    assert ours_bn == theirs_bn[-len(ours_bn):]
