"""`mdistiller:NAME`: mdistiller's own distiller classes (vendored snapshot) through the suite's harness."""
import re

import pytest

from suite.cli import main
from suite.spec import CellSpec
from tests.reference import import_reference


@pytest.fixture(autouse=True)
def mdistiller_importable():
    import_reference("mdistiller", "mdistiller")


def spec(method):
    return CellSpec.make(method, "resnet8", "synthetic_cifar10", "smoke", params={"teacher": "resnet8"},
                         recipe_overrides={"epochs": 2, "train_subset": None})


def test_mdistiller_kd_trains_like_the_suites_kd(make_runner):
    """Same student init, data order and loss (T = 4, CE 0.1 + KD 0.9): the two KD rows train alike."""
    runner = make_runner()
    cells = runner.plan([spec("kd"), spec("mdistiller:KD")])
    assert runner.run(cells).failed == {}
    ours, theirs = (runner.store.get(c.key)["metrics"] for c in cells[1:])
    assert theirs["top1"] > 30  # chance is 10 %
    assert abs(ours["top1"] - theirs["top1"]) <= 1.0, (ours["top1"], theirs["top1"])
    assert ours["stages"][0]["epochs"] == theirs["stages"][0]["epochs"] == 2


def test_mdistiller_rows_join_the_kd_table_under_their_own_label(run_dir, capsys):
    args = ["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--quiet", "--table", "kd",
            "--profile", "smoke", "--dataset", "synthetic_cifar100", "--opt", "pairs=resnet8:resnet8"]
    assert main([*args, "--methods", "+mdistiller:DKD[overrides=DKD.BETA 2.0]", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert re.search(r"mdistiller:DKD\[overrides=DKD.BETA 2.0,teacher=resnet8\]/resnet8/", plan), plan
    assert main([*args, "--methods", "+mdistiller:NOPE"]) == 2
    assert "mdistiller has no distiller 'NOPE'; valid: mdistiller:KD" in capsys.readouterr().err
