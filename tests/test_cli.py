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


def test_dry_run_scales_its_estimate_by_the_plans_finished_cells(run_dir, capsys, monkeypatch):
    """The FLOPs model is rough (it knows no data loading, no extra modules); a plan with finished cells measures how rough
    on this machine, so a continued campaign is estimated from its own cells."""
    import suite.cli
    from suite.columns import fmt_duration
    from suite.store import Store

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist"]
    assert cli(run_dir, *args) == 0
    (row,) = [r for r in Store(run_dir["store"]).rows() if r["status"] == "done"]
    core_seconds = max(row["metrics"]["cell_seconds"], row["metrics"]["train_seconds"]) * row["env"]["threads"]
    monkeypatch.setattr(suite.cli, "estimate_seconds", lambda cell, device_type: 100.0)
    capsys.readouterr()
    assert cli(run_dir, *args, "--seeds", "3", "--dry-run") == 0
    out = capsys.readouterr().out
    # two cells to train, each modelled at 100 s and scaled by measured/modelled = core_seconds / (2 cores * 100 s)
    assert f"estimated {fmt_duration(core_seconds)} " in out and "scaled by the finished cells of this plan" in out, out


def test_a_distillers_estimate_counts_its_teachers_forward_passes(make_runner):
    """A student's training step also runs its teacher forward: a larger teacher costs more (the kd cell on AlexNet
    took about 4x its estimate in core-seconds when only the student's passes were counted)."""
    from suite.estimate import estimate_seconds
    from suite.spec import CellSpec

    def estimate(method, **params):
        spec = CellSpec.make(method, "resnet8", "synthetic_cifar10", "smoke", params=params)
        return estimate_seconds(make_runner().resolve(spec), "cpu")

    alone, small, large = estimate("baseline"), estimate("kd", teacher="resnet8"), estimate("kd", teacher="resnet56")
    assert alone < small < large
    assert small == pytest.approx(alone * 4 / 3, rel=0.05)  # a same-size teacher adds one forward to the three


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
    (["--table", "baselines", "--budgets", "x1,x2", "--epochs", "3"], "--epochs and --budgets both set the epochs"),
    (["--table", "baselines", "--budgets", "x1,x2", "--tensorboard", "tb"], "--tensorboard cannot be combined with --budgets"),
    (["--table", "baselines", "--budgets", "x1"], "--budgets needs two budgets or more"),
    (["--table", "baselines", "--render-only", "--from-records"], "no published cell records at .*baselines.cells.jsonl"),
])
def test_bad_input_gives_one_line(run_dir, capsys, args, needle):
    import re

    assert cli(run_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(needle, err), err


def test_a_store_that_is_not_sqlite_gives_one_line(tmp_path, capsys):
    garbage = tmp_path / "store.sqlite"
    garbage.write_bytes(b"this is no database" * 100)
    code = main(["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist",
                 "--out", str(tmp_path / "out"), "--store", str(garbage), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"--store {garbage} is not a usable SQLite" in err


def test_header_states_the_epochs_the_cells_ran(run_dir):
    assert cli(run_dir, "--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--epochs", "2") == 0
    header = (run_dir["out"] / "baselines.md").read_text().split("\n|")[0]
    assert "2 ep, batch 64" in header and "1 ep," not in header


def test_epochs_zero_trains_no_epoch_anywhere(run_dir):
    """Every method family's stages (fine-tuning, QAT, clustering, distillers with a paraphraser, EncodeNet's
    autoencoder and head, BranchyNet) scale the recipe's epochs by the one rule: zero stays zero."""
    from suite.store import Store

    assert cli(run_dir, "--table", "compare", "--profile", "smoke", "--dataset", "synthetic_mnist", "--epochs", "0",
               "--model", "lenet5", "--methods", "baseline,prune[schedule=gradual],quantize[mode=qat],cluster,"
               "structured_prune,early_exit,encodenet,encodenet_pruned") == 0
    assert cli(run_dir, "--table", "kd", "--profile", "smoke", "--dataset", "synthetic_cifar10",  # KD, and FT's
               "--epochs", "0", "--opt", "pairs=resnet8:resnet8", "--methods", "kd,ft") == 0  # paraphraser
    rows = Store(run_dir["store"]).rows()
    assert len(rows) > 12 and all(r["status"] == "done" for r in rows)
    trained = {r["spec"]["method"]: [s["epochs"] for s in r["metrics"]["stages"]] for r in rows}
    assert {"prune", "quantize", "cluster", "kd", "ft", "encodenet_ae", "encodenet", "branchynet", "caenet_prune",
            "encodenet_pruned"} <= set(trained)
    assert all(e == 0 for stages in trained.values() for e in stages), trained


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


@pytest.mark.parametrize("jobs", ["1", "2"])  # 2: worker processes must honour the per-cell force flag
def test_only_with_force_retrains_just_the_matching_cell(run_dir, capsys, jobs):
    import sqlite3

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2", "--jobs", jobs]
    assert cli(run_dir, *args) == 0
    finished = dict(sqlite3.connect(run_dir["store"]).execute("SELECT key, finished FROM cells").fetchall())
    capsys.readouterr()
    assert cli(run_dir, *args, "--only", "seed1", "--force", "--dry-run") == 0
    plan = capsys.readouterr().out
    assert plan.count("to train") == 1 and "to train  " in next(l for l in plan.splitlines() if "seed1" in l)
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
    Store(run_dir["store"]).finish(row["key"], row["metrics"], {**row["env"], "device": "Other CPU, 4 threads"})
    assert cli(run_dir, *args, "--remeasure") == 0
    assert "baselines: remeasured" in capsys.readouterr().out
    (again,) = Store(run_dir["store"]).rows()
    assert again["key"] == row["key"] and "remeasured" in again["metrics"]
    assert again["metrics"]["top1"] == row["metrics"]["top1"]  # the same saved model
    assert again["metrics"]["stages"] == row["metrics"]["stages"]  # training figures kept
    md = (run_dir["out"] / "baselines.md").read_text()
    assert "Re-measured with `--remeasure`" in md
    # trained on another machine, timed on this one: the header names both, each where it belongs
    device = next(line for line in md.splitlines() if line.startswith("- Device"))
    assert device.startswith("- Device (training; the re-measure pass names its own below): Other CPU, 4 threads")
    remeasured = next(line for line in md.splitlines() if line.startswith("- Re-measured"))
    assert again["env"]["device"] in remeasured and "Other CPU" not in remeasured


def test_one_remeasure_pass_over_tables_sharing_cells_times_each_cell_once(run_dir, monkeypatch, capsys):
    """Two tables that show the same cell (here the same table at 1 and 2 seeds: seed 0 in both): one pass re-times
    each distinct cell once, so both tables show one figure per cell, and names the pass by when it began."""
    import argparse

    from suite import api
    from suite.cli import remeasure
    from suite.runner import Runner
    from suite.tables import get_table

    trained = {**run_dir, "out": run_dir["out"].parent / "trained"}  # the pass renders the 1-seed table first
    assert cli(trained, "--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2") == 0
    runner = api.make_runner(run_dir["store"], device="cpu", progress=False)
    one, two = (api.plan_table(runner, get_table("baselines"), api.table_options("smoke", n, "synthetic_mnist"))
                for n in (1, 2))
    timed = []
    real = Runner.remeasure
    monkeypatch.setattr(Runner, "remeasure", lambda self, cell, started=None: timed.append(cell.key)
                        or real(self, cell, started))
    ns = argparse.Namespace(quiet=True, out=run_dir["out"], force=False)
    assert remeasure(runner, [one, two], ns, api.table_options("smoke", 2, "synthetic_mnist")) == 0
    assert sorted(timed) == sorted(c.key for c in two.cells)  # seed 0 once, not once per table
    assert "remeasured 2 distinct cells for the 3" in capsys.readouterr().out
    passes = {runner.store.get(k)["metrics"]["remeasured"]["pass"] for k in timed}
    assert len(passes) == 1
    header = (run_dir["out"] / "baselines.md").read_text()
    assert f"pass of {passes.pop()[:16]}" in header


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
    published = (run_dir["out"] / "baselines.md").read_text()
    assert cli(run_dir, *args, "--render-only") == 2  # without them the row would be pending: refused
    assert (run_dir["out"] / "baselines.md").read_text() == published
    assert cli(run_dir, *args, "--render-only", "--force") == 0  # unless asked to replace it
    assert "| pending " in (run_dir["out"] / "baselines.md").read_text()


def _tables():
    from suite.tables import discover_tables

    return [n for n in discover_tables().names() if n != "compare"]  # compare needs --model / --methods: below


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
@pytest.mark.parametrize("table", _tables())
def test_dry_run_of_every_table_at_every_profile_completes(run_dir, tmp_path, capsys, monkeypatch, table, profile):
    """Planning and estimating build every cell's model, compressed and int8 ones included (as timm tests its models)."""
    import suite.data as D

    monkeypatch.setattr(D, "_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert cli(run_dir, "--table", table, "--profile", profile, "--dry-run", "--data-dir", str(tmp_path / "none")) == 0
    out = capsys.readouterr().out
    assert f"== {table}" in out and "estimated" in out


def test_import_records_adds_matching_cells_and_never_stale_or_stored_ones(run_dir, tmp_path, capsys):
    """A campaign continues on another machine from committed records: matching cells are not retrained."""
    import json

    from suite.store import Store

    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2"]
    assert cli(run_dir, *args) == 0
    published = run_dir["out"] / "baselines.cells.jsonl"
    records = [json.loads(line) for line in published.read_text().splitlines()]
    assert len(records) == 2
    stale = {**records[1], "key": "0" * 20}  # e.g. made by other code: its key is not what this code computes
    moved = tmp_path / "records.jsonl"
    moved.write_text("".join(json.dumps(r) + "\n" for r in [records[0], stale]))

    other = {"out": run_dir["out"], "store": tmp_path / "other" / "store.sqlite"}  # another machine's empty store
    kept = Store(other["store"])
    kept.claim(records[0]["key"], records[0]["spec"])
    kept.finish(records[0]["key"], {**records[0]["metrics"], "top1": -1.0}, {})  # it holds its own result
    capsys.readouterr()
    assert main(["--store", str(other["store"]), "--import-records", str(moved)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("imported 0, already in the store 1, stale 1 (key differs (other code, recipe or data)), "
                         "not finished 0")
    assert Store(other["store"]).get(records[0]["key"])["metrics"]["top1"] == -1.0  # never overwritten
    assert Store(other["store"]).get("0" * 20) is None  # never imported

    fresh = tmp_path / "fresh" / "store.sqlite"
    assert main(["--store", str(fresh), "--import-records", str(published)]) == 0
    assert "imported 2, already in the store 0, stale 0" in capsys.readouterr().out
    assert cli({"out": tmp_path / "out2", "store": fresh}, *args) == 0
    assert "trained 0, cached 2" in capsys.readouterr().out  # the campaign goes on without retraining


def test_from_records_without_the_data_says_why_rows_are_pending(run_dir, tmp_path, capsys, monkeypatch):
    import suite.data as D

    monkeypatch.setattr(D, "_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    run_dir["out"].mkdir(parents=True)
    (run_dir["out"] / "baselines.cells.jsonl").write_text('{"key": "k", "status": "done", "spec": {}, "metrics": {}}\n')
    assert cli(run_dir, "--table", "baselines", "--profile", "smoke", "--dataset", "mnist", "--render-only",
               "--from-records", "--data-dir", str(tmp_path / "nodata")) == 0
    out = capsys.readouterr().out
    assert "mnist not found under" in out and "cannot be matched" in out


def test_an_imported_dependency_without_its_artifacts_is_retrained_for_its_dependents(run_dir, tmp_path, capsys):
    """Records travel without checkpoints: a pruned model needs its baseline's weights, so that cell trains again."""
    args = ["--profile", "smoke", "--dataset", "synthetic_mnist"]
    assert cli(run_dir, "--table", "baselines", *args) == 0
    fresh = {"out": tmp_path / "elsewhere", "store": tmp_path / "elsewhere" / "store.sqlite"}
    assert main(["--store", str(fresh["store"]), "--import-records",
                 str(run_dir["out"] / "baselines.cells.jsonl")]) == 0
    capsys.readouterr()
    assert cli(fresh, "--table", "compare", "--methods", "baseline,prune", "--model", "lenet5", *args) == 0
    out = capsys.readouterr().out
    assert "retraining baseline/lenet5/synthetic_mnist/smoke/seed0: its artifacts are not in" in out
    assert "failed 0" in out


def test_an_imported_finished_chain_retrains_none_of_its_dependencies(run_dir, tmp_path, capsys):
    """A dependency whose dependents are all finished is loaded by nobody: records alone continue the campaign."""
    args = ["--table", "compare", "--methods", "baseline,prune", "--model", "lenet5", "--profile", "smoke",
            "--dataset", "synthetic_mnist"]
    assert cli(run_dir, *args) == 0
    fresh = {"out": tmp_path / "elsewhere", "store": tmp_path / "elsewhere" / "store.sqlite"}
    assert main(["--store", str(fresh["store"]), "--import-records",
                 str(run_dir["out"] / "compare.cells.jsonl")]) == 0
    capsys.readouterr()
    assert cli(fresh, *args) == 0
    out = capsys.readouterr().out
    assert "retraining" not in out and "trained 0" in out


@pytest.mark.parametrize("native", [False, True], ids=["emulated-bf16", "native-bf16"])
def test_bf16_on_a_cpu_without_native_bf16_is_one_warning_line_and_still_plans(run_dir, capsys, monkeypatch, native):
    import suite.numerics
    monkeypatch.setattr(suite.numerics, "native_bf16_cpu", lambda: native)
    args = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_cifar10", "--device", "cpu"]
    assert cli(run_dir, *args, "--precision", "bf16", "--dry-run") == 0
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if "emulated" in line]
    assert len(warnings) == (0 if native else 1) and "to train" in out.out
    assert cli(run_dir, *args, "--precision", "fp32", "--dry-run") == 0
    assert "emulated" not in capsys.readouterr().err


def test_loading_the_cli_models_and_methods_imports_neither_timm_nor_scipy_stats():
    """Every process (a --jobs driver, each worker, --help) loads every model and method module: timm (with
    torchvision) and scipy.stats are imported by the code that uses them, not by that."""
    import subprocess
    import sys

    code = ("import sys, suite.cli\nfrom suite.plugins import discover_methods\nimport baselines\ndiscover_methods()\n"
            "print(sorted(m for m in ('timm', 'torchvision', 'scipy.stats') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout
