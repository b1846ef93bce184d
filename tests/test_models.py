import pytest
import torch

from baselines import create_model, model_names

CIFAR_COUNTS_10 = {"resnet20": 0.27e6, "resnet32": 0.47e6, "resnet110": 1.73e6}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,expected", CIFAR_COUNTS_10.items())
def test_cifar_resnet_parameter_counts_match_the_literature(name, expected):
    assert n_params(create_model(name, num_classes=10)) == pytest.approx(expected, rel=0.01)


def test_cifar_resnet50_100_classes_matches_encodenet_table5():
    assert n_params(create_model("resnet50", num_classes=100)) == 23_705_252


def test_lenet5_has_the_classic_parameter_count():
    assert n_params(create_model("lenet5", num_classes=10, in_chans=1)) == 61_706


@pytest.mark.parametrize("name", [n for n in model_names() if n not in {"resnet34", "resnet50", "vgg16", "vgg13", "vgg11"}]
                         + ["timm:resnet10t"])
def test_every_model_follows_the_interface(name):
    torch.manual_seed(0)
    in_chans, size = (1, 28) if name == "lenet5" else (3, 32)
    model = create_model(name, num_classes=7, in_chans=in_chans).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        assert logits.shape == (2, 7)
        assert torch.allclose(model.forward_head(feats), logits, atol=1e-5)
        emb = model.forward_head(feats, pre_logits=True)
        assert emb.ndim == 2 and emb.shape[0] == 2
        f = model.forward_with_features(x)
        assert torch.allclose(f.embedding, emb, atol=1e-5) and torch.allclose(f.logits, logits, atol=1e-5)
        if f.preact is not None:  # a stage's output is its pre-activation output after the activation
            assert all(torch.allclose(torch.relu(p), s) for p, s in zip(f.preact, f.stages))
        encoder, classifier = model.split()
        assert torch.allclose(classifier(encoder(x)), logits, atol=1e-5)
        if not name.startswith("timm:"):
            stages = model.forward_stages(x)
            assert torch.equal(stages[-1], feats)
            enc1, cls1 = model.split(1)  # an earlier split point composes back to the model too
            assert torch.allclose(cls1(enc1(x)), logits, atol=1e-5)


def test_split_shares_parameters_with_the_model():
    model = create_model("resnet20")
    encoder, classifier = model.split()
    ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in encoder.parameters()} | {id(p) for p in classifier.parameters()} == ids


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="valid: .*resnet20"):
        create_model("resnet21")


def test_a_changed_layout_gets_a_new_key_and_other_models_keep_theirs(make_runner, monkeypatch):
    """VGG moved to mdistiller's layout (revision 2): its cells retrain; a ResNet cell's key is untouched."""
    import baselines.registry as R
    from suite.spec import CellSpec

    vgg = CellSpec.make("baseline", "vgg8", "synthetic_cifar10", "smoke")
    resnet = CellSpec.make("baseline", "resnet8", "synthetic_cifar10", "smoke")
    now = {s.model: make_runner().resolve(s).key for s in (vgg, resnet)}
    monkeypatch.setattr(R, "REVISIONS", {})  # as the keys were computed before revisions existed
    before = {s.model: make_runner().resolve(s).key for s in (vgg, resnet)}
    assert now["vgg8"] != before["vgg8"] and now["resnet8"] == before["resnet8"]
