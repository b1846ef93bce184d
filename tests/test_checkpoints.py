"""Teacher checkpoints in mdistiller's and RepDistiller's layouts: loaded into the suite's models with the same
logits as their own models give, hashed into the cell key, and used by a kd run instead of training a teacher."""
import pytest
import torch

import suite
from baselines import create_model
from suite.checkpoints import load_checkpoint
from tests.reference import assert_close_to_scale, import_reference


def layouts(state: dict) -> dict[str, object]:
    """The same weights as each codebase writes them."""
    return {"repdistiller teacher": {"model": state, "epoch": 240, "best_acc": torch.tensor(72.3)},
            "mdistiller student_best": {"model": state},
            "DataParallel": {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 240},
            "mdistiller distiller (latest)": {"model": {**{f"module.student.{k}": v for k, v in state.items()},
                                                        "module.teacher.fc.weight": torch.zeros(1)}, "epoch": 3}}


@pytest.mark.parametrize("ours,theirs", [("resnet56", "resnet56"), ("vgg13", "vgg13_bn")])
def test_a_reference_checkpoint_gives_the_reference_models_logits(tmp_path, ours, theirs):
    models = import_reference("mdistiller.models.cifar", "mdistiller")
    torch.manual_seed(0)
    reference = getattr(models, theirs)(num_classes=100).eval()
    for _ in range(2):  # BatchNorm statistics that are not the defaults, so the buffers are checked too
        reference.train()(torch.randn(8, 3, 32, 32))
    reference.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)[0]
    for name, obj in layouts(reference.state_dict()).items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        model = create_model(ours, num_classes=100).eval()
        assert load_checkpoint(model, path) == "reference", name
        with torch.no_grad():
            assert_close_to_scale(model(x), expected)


def test_a_checkpoint_of_another_model_is_one_line(tmp_path):
    path = tmp_path / "resnet20.pth"
    torch.save({"model": create_model("resnet20", 10).state_dict()}, path)
    with pytest.raises(ValueError, match="not this model's layout") as info:
        load_checkpoint(create_model("resnet56", 10), path)
    assert "\n" not in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        load_checkpoint(create_model("resnet56", 10), tmp_path / "junk.pth")


def test_a_kd_run_takes_its_teacher_from_a_checkpoint_whose_content_is_in_the_keys(tmp_path):
    torch.manual_seed(0)
    teacher = create_model("resnet20", 10)
    path = tmp_path / "ckpt_epoch_240.pth"
    state = {f"w{i}": v for i, v in enumerate(teacher.state_dict().values())}  # keys as another codebase names them
    torch.save({"model": state, "epoch": 240}, path)
    run = dict(profile="smoke", dataset="synthetic_cifar10", methods="kd", store=tmp_path / "runs" / "store.sqlite",
               options={"pairs": "resnet20:resnet8", "teacher_checkpoint": str(path)}, progress=False)
    result = suite.run_table("kd", **run)
    methods = {c.spec.method for c in result.cells}
    assert "pretrained" in methods and not any(c.spec.method == "baseline" and c.spec.model == "resnet20"
                                               for c in result.cells)  # the teacher is loaded, not trained
    rows = result.frame.set_index("Method")
    assert rows.loc["Teacher (from checkpoint)", "n"] == 1 and rows.loc["KD (Hinton)", "n"] == 1
    assert f"loaded from {path}" in result.markdown
    kd_key = next(c.key for c in result.cells if c.spec.method == "kd")

    torch.save({"model": {k: v + 0.01 for k, v in state.items()}, "epoch": 240}, path)  # another file, same path
    changed = suite.run_table("kd", **run)
    assert next(c.key for c in changed.cells if c.spec.method == "kd") != kd_key
