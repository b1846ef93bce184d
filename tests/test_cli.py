"""The command line as a user meets it: tables end to end, caching, and one-line errors."""
import pytest

from suite.cli import main


def cli(run_dir, *args):
    return main(["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--quiet", *args])


def test_smoke_table_end_to_end_then_cached(run_dir, capsys):
    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist"]
    assert cli(run_dir, *args) == 0
    assert "trained 1, cached 0" in capsys.readouterr().out
    md = (run_dir["out"] / "baselines.md").read_text()
    assert "LeNet-5" in md and "Profile: `smoke`" in md and "synthetic" in md and "Reported" in md
    assert (run_dir["out"] / "baselines.csv").exists()
    assert cli(run_dir, *args) == 0
    assert "trained 0, cached 1" in capsys.readouterr().out


def test_list_names_everything(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for word in ("tables:", "baselines", "methods:", "baseline", "models:", "resnet20", "datasets:", "cifar100",
                 "profiles:", "smoke"):
        assert word in out


def test_dry_run_trains_nothing(run_dir, capsys):
    assert cli(run_dir, "--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_cifar10", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "to train" in out and "estimated" in out
    assert not run_dir["out"].exists()


@pytest.mark.parametrize("args,needle", [
    (["--table", "nosuch"], "unknown table 'nosuch'; valid: .*baselines"),
    (["--table", "baselines", "--profile", "fast"], "unknown profile 'fast'; valid: cpu, paper, smoke"),
    (["--table", "baselines", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid: .*cifar10"),
    (["--table", "baselines", "--seeds", "0"], "--seeds must be at least 1"),
    ([], "nothing to do"),
    (["--table", "baselines", "--opt", "pairs=resnet56:resnet20"], "table 'baselines' has no option pairs; valid: none"),
    (["--table", "kd", "--opt", "pairs=resnet56:resnet21"], "unknown model 'resnet21' in pairs"),
    (["--table", "kd", "--opt", "pairs"], "--opt takes KEY=VALUE"),
    (["--table", "baselines", "--from-records"], "use it with --render-only"),
    (["--table", "baselines", "--render-only", "--from-records"], "no published cell records at .*baselines.cells.jsonl"),
])
def test_bad_input_gives_one_line(run_dir, capsys, args, needle):
    import re

    assert cli(run_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(needle, err), err


def test_unwritable_out_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist",
                 "--out", str(blocker / "sub"), "--store", str(tmp_path / "s.sqlite"), "--quiet"])
    assert code == 2 and "not writable" in capsys.readouterr().err


def test_missing_data_marks_the_cell_failed_and_still_renders(run_dir, tmp_path, capsys, monkeypatch):
    import suite.data as D

    monkeypatch.setattr(D, "_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    code = cli(run_dir, "--table", "baselines", "--profile", "smoke", "--dataset", "mnist", "--data-dir", str(tmp_path / "empty"))
    assert code == 1
    md = (run_dir["out"] / "baselines.md").read_text()
    assert "failed: " in md and "not found" in md


def test_only_with_force_retrains_just_the_matching_cell(run_dir, capsys):
    import sqlite3

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2"]
    assert cli(run_dir, *args) == 0
    finished = dict(sqlite3.connect(run_dir["store"]).execute("SELECT key, finished FROM cells").fetchall())
    capsys.readouterr()
    assert cli(run_dir, *args, "--only", "seed1", "--force") == 0
    assert "trained 1, cached 0" in capsys.readouterr().out
    again = dict(sqlite3.connect(run_dir["store"]).execute("SELECT key, finished FROM cells").fetchall())
    assert sum(again[k] != finished[k] for k in finished) == 1  # the seed-0 cell was left alone
    assert cli(run_dir, *args, "--only", "seed7") == 2  # a filter that matches nothing is an error


def test_remeasure_trains_nothing_and_refreshes_the_measurements(run_dir, capsys):
    from suite.store import Store

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist"]
    assert cli(run_dir, *args) == 0
    (row,) = Store(run_dir["store"]).rows()
    assert cli(run_dir, *args, "--remeasure") == 0
    assert "baselines: remeasured" in capsys.readouterr().out
    (again,) = Store(run_dir["store"]).rows()
    assert again["key"] == row["key"] and "remeasured" in again["metrics"]
    assert again["metrics"]["top1"] == row["metrics"]["top1"]  # the same saved model
    assert again["metrics"]["stages"] == row["metrics"]["stages"]  # training figures kept
    assert "Re-measured with `--remeasure`" in (run_dir["out"] / "baselines.md").read_text()


def test_render_only_trains_nothing_and_marks_unfinished_rows_pending(run_dir, capsys):
    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--render-only"]
    assert cli(run_dir, *args) == 0
    assert "rendered from the store" in capsys.readouterr().out
    md = (run_dir["out"] / "baselines.md").read_text()
    assert "| pending " in md


def test_published_records_re_render_the_table_without_its_store(run_dir, capsys):
    import json

    from suite.store import Store

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist"]
    assert cli(run_dir, *args) == 0
    (row,) = Store(run_dir["store"]).rows()
    records = [json.loads(line) for line in (run_dir["out"] / "baselines.cells.jsonl").read_text().splitlines()]
    assert [(r["key"], r["metrics"]["top1"]) for r in records] == [(row["key"], row["metrics"]["top1"])]
    table = [line for line in (run_dir["out"] / "baselines.md").read_text().splitlines() if "LeNet-5" in line]
    assert table and "pending" not in table[0]

    run_dir["store"].unlink()  # a fresh machine: the published files are all there is
    capsys.readouterr()
    assert cli(run_dir, *args, "--render-only", "--from-records") == 0
    assert "1 published records" in capsys.readouterr().out
    again = [line for line in (run_dir["out"] / "baselines.md").read_text().splitlines() if "LeNet-5" in line]
    assert again == table
    assert Store(run_dir["store"]).rows() == []  # the records were read, not imported into the store
    assert cli(run_dir, *args, "--render-only") == 0  # without them the row is pending again
    assert "| pending " in (run_dir["out"] / "baselines.md").read_text()
