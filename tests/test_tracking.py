"""Per-epoch history: recorded with every cell, written as TensorBoard event files, drawn as training curves."""
import pytest

import suite
from suite.store import Store
from suite.tracking import main_history, run_name, write_tensorboard


def test_every_epoch_is_recorded_and_written_to_tensorboard_as_stored(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store_path = tmp_path / "runs" / "store.sqlite"
    result = suite.run_table("baselines", profile="smoke", dataset="synthetic_mnist", epochs=3, store=store_path,
                             progress=False, tensorboard=tmp_path / "tb")
    cell = next(c for c in result.cells if c.spec.method == "baseline")
    history = main_history(Store(store_path).get(cell.key)["metrics"])
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for h in history:
        assert {"loss", "train_acc", "lr", "epoch_seconds", "images_per_second", "seconds"} <= h.keys()
        assert "test" not in " ".join(h)  # train figures only: the test set is never looked at per epoch
    assert history == next(r for r in result.records if r["key"] == cell.key)["metrics"]["stages"][-1]["history"]

    events = EventAccumulator(str(tmp_path / "tb" / run_name(cell.label, cell.key)))
    events.Reload()
    for tag, field in (("main/train_loss", "loss"), ("main/train_acc", "train_acc"), ("main/lr", "lr"),
                       ("main/images_per_second", "images_per_second")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([h[field] for h in history], rel=1e-6)

    assert write_tensorboard(tmp_path / "tb", result.cells, Store(store_path)) == 1  # written again: rewritten
    events = EventAccumulator(str(tmp_path / "tb" / run_name(cell.label, cell.key)))
    events.Reload()
    assert len(events.Scalars("main/train_loss")) == 3


def test_a_table_with_curves_draws_them_beside_it(tmp_path):
    out = tmp_path / "results" / "smoke"
    suite.compare(["baseline", "kd"], model="lenet5_half", teacher="lenet5", seeds=2, epochs=2, profile="smoke",
                  dataset="synthetic_mnist", store=tmp_path / "runs" / "store.sqlite", out=out, progress=False)
    assert (out / "compare_training_curves.png").stat().st_size > 0
