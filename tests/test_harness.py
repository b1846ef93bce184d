import pytest
import torch

from baselines import create_model
from suite.data import load_dataset
from suite.harness import TrainingDiverged, evaluate, fit
from suite.profiles import Recipe

RECIPE = Recipe(epochs=3, batch_size=64, lr=0.02)


def test_fit_learns_well_above_chance_on_synthetic_data():
    data = load_dataset("synthetic_mnist")
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1)
    before = evaluate(model, data.test, data.info)["top1"]
    result = fit(model, data.train, data.info, RECIPE, progress=False)
    after = evaluate(model, data.test, data.info)
    assert result.epochs_run == 3 and len(result.history) == 3
    assert after["top1"] > 60 and after["top1"] > before + 30  # chance is 10 %
    assert 0 < after["top5"] <= 100


def test_nan_loss_fails_with_a_reason():
    data = load_dataset("synthetic_mnist")
    model = create_model("lenet5", num_classes=10, in_chans=1)

    def nan_loss(m, x, y, step):
        logits = m(x)
        return logits, {"broken": logits.sum() * float("nan")}

    with pytest.raises(TrainingDiverged, match="nan.*epoch 1"):
        fit(model, data.train, data.info, RECIPE, losses=nan_loss, progress=False)


def test_interrupted_fit_resumes_to_the_same_weights(tmp_path):
    data = load_dataset("synthetic_cifar10")
    train = data.train.subset(torch.arange(256))

    def train_model(checkpoint, stop_after=None):
        torch.manual_seed(0)
        model = create_model("resnet8", num_classes=10)

        def maybe_stop(epoch, m):
            if stop_after is not None and epoch == stop_after:
                raise KeyboardInterrupt

        try:
            fit(model, train, data.info, RECIPE, checkpoint=checkpoint, progress=False, on_epoch_end=maybe_stop)
        except KeyboardInterrupt:
            return None
        return model

    reference = train_model(tmp_path / "a.ckpt")
    assert train_model(tmp_path / "b.ckpt", stop_after=2) is None  # killed after epoch 2
    resumed = train_model(tmp_path / "b.ckpt")
    ckpt = torch.load(tmp_path / "b.ckpt", weights_only=True)
    assert ckpt["epoch"] == 3 and len(ckpt["history"]) == 3
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_finished_checkpoint_makes_fit_a_no_op(tmp_path):
    data = load_dataset("synthetic_mnist")
    model = create_model("lenet5", num_classes=10, in_chans=1)
    fit(model, data.train, data.info, RECIPE.with_(epochs=1), checkpoint=tmp_path / "c.ckpt", progress=False)
    again = fit(model, data.train, data.info, RECIPE.with_(epochs=1), checkpoint=tmp_path / "c.ckpt", progress=False)
    assert again.epochs_run == 0 and again.images_seen == 0


def test_params_restricts_what_is_trained():
    data = load_dataset("synthetic_mnist")
    model = create_model("lenet5", num_classes=10, in_chans=1)
    encoder, classifier = model.split()
    frozen = {k: v.clone() for k, v in encoder.state_dict().items()}
    fit(model, data.train, data.info, RECIPE.with_(epochs=1), params=classifier.parameters(), progress=False)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, frozen[k])


def test_recipe_rejects_negative_epochs():
    with pytest.raises(ValueError, match="epochs"):
        Recipe(epochs=-1, batch_size=8, lr=0.1)
