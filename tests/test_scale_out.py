"""Executors, crash safety and concurrency with real subprocesses, and bad input that fails one cell only."""
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from suite.plugins import METHODS, Method, discover_methods, register_method
from suite.spec import CellSpec

ROOT = Path(__file__).resolve().parents[1]
# two cells: LeNet-5 on synthetic MNIST with seeds 0 and 1
SMOKE = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2", "--quiet",
         "--threads", "1"]


def suite_cmd(tmp_path, *extra):
    return [sys.executable, str(ROOT / "run_all.py"), *SMOKE, "--store", str(tmp_path / "runs" / "store.sqlite"),
            "--out", str(tmp_path / "results"), *extra]


def store_rows(tmp_path):
    db = sqlite3.connect(tmp_path / "runs" / "store.sqlite")
    rows = db.execute("SELECT key, status, metrics FROM cells").fetchall()
    db.close()
    return [(k, s, json.loads(m) if m else None) for k, s, m in rows]


def test_two_runs_on_one_store_train_each_cell_once(tmp_path):
    cmd = suite_cmd(tmp_path, "--epochs", "5")
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    trained = sum(int(out.split("trained ")[1].split(",")[0]) for out, _ in outs)
    assert trained == 2  # two cells, each trained by exactly one of the two processes
    rows = store_rows(tmp_path)
    assert len(rows) == 2 and all(s == "done" for _, s, _ in rows)


def top1_by_key(tmp_path):
    return {k: m["top1"] for k, s, m in store_rows(tmp_path) if s == "done"}


def test_parallel_workers_give_the_same_numbers_as_one_process(tmp_path):
    sequential, parallel = tmp_path / "seq", tmp_path / "par"
    for folder, extra in ((sequential, []), (parallel, ["--jobs", "2"])):
        out = subprocess.run(suite_cmd(folder, "--epochs", "1", *extra), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr
    assert top1_by_key(sequential) == top1_by_key(parallel) and len(top1_by_key(parallel)) == 2
    # workers show no epoch bars: the driver says what each started and reports each cell as it finishes
    assert out.stdout.count(" (in a worker)") == 2 and out.stdout.count("done baseline/") == 2 and "[2/2]" in out.stdout


def test_ray_executor_with_two_cpu_workers_matches_the_local_executor(tmp_path):
    pytest.importorskip("ray")
    local, ray_dir = tmp_path / "local", tmp_path / "ray"
    for folder, extra in ((local, []), (ray_dir, ["--executor", "ray", "--jobs", "2"])):
        out = subprocess.run(suite_cmd(folder, "--epochs", "1", *extra), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr
    assert top1_by_key(local) == top1_by_key(ray_dir) and len(top1_by_key(ray_dir)) == 2


# ---------------------------------------------------------------------------------------------- bad input
class Diverging(Method):
    name = "test_diverging"

    def run(self, ctx):
        model = self.build_model(ctx.spec, ctx.info, ctx.params)

        def nan_loss(m, x, y, step):
            logits = m(x)
            return logits, {"ce": logits.mean() * float("nan")}

        ctx.fit(model, losses=nan_loss)
        return model


discover_methods()
if Diverging.name not in METHODS:
    register_method(Diverging)


def test_nan_loss_fails_its_cell_and_the_table_marks_it(tmp_path, make_runner):
    from suite.report import render
    from suite.tables import Table, TableOptions, TableRow

    runner = make_runner()
    specs = [CellSpec.make("test_diverging", "lenet5", "synthetic_mnist", "smoke"),
             CellSpec.make("baseline", "lenet5", "synthetic_mnist", "smoke")]
    summary = runner.run(runner.plan(specs))
    assert len(summary.done) == 1 and len(summary.failed) == 1  # the other cell still ran

    class T(Table):
        name, title, description = "nan", "NaN table", "one diverging row"

    rows = [TableRow({"Method": "diverging"}, specs[0]), TableRow({"Method": "baseline"}, specs[1])]
    md, _ = render(T(), TableOptions(profile="smoke"), rows, [[runner.resolve(s)] for s in specs],
                   runner.store, tmp_path / "out" / "smoke")
    assert "failed: TrainingDiverged: loss became nan in epoch 1" in md.read_text()


@pytest.mark.parametrize("spec,needle", [
    (CellSpec.make("no_such_method", "lenet5", "synthetic_mnist", "smoke"), "unknown method 'no_such_method'; valid: .*baseline"),
    (CellSpec.make("baseline", "lenet6", "synthetic_mnist", "smoke"), "unknown model 'lenet6'; valid: .*lenet5"),
    (CellSpec.make("baseline", "lenet5", "mnist2", "smoke"), "unknown dataset 'mnist2'; valid: .*mnist"),
])
def test_unknown_names_fail_with_the_valid_ones(make_runner, spec, needle):
    import re

    runner = make_runner()
    try:
        summary = runner.run(runner.plan([spec]))
        message = next(iter(summary.failed.values()))
    except KeyError as exc:
        message = str(exc)
    assert re.search(needle, message), message


def test_unreadable_teacher_checkpoint_fails_with_its_name(tmp_path, make_runner):
    garbage = tmp_path / "teacher.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    runner = make_runner()
    spec = CellSpec.make("kd", "lenet5", "synthetic_mnist", "smoke", params={"teacher": "lenet5",
                                                                          "teacher_checkpoint": str(garbage)})
    reason = next(iter(runner.run(runner.plan([spec])).failed.values()))
    assert "teacher checkpoint" in reason and "teacher.pt" in reason


def test_corrupt_cifar_file_is_named(tmp_path):
    from suite.data import DATASETS, DataError

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_1: unreadable CIFAR batch"):
        DATASETS.get("cifar10").load(tmp_path)


@pytest.mark.parametrize("args,needle", [(["--epochs", "-1"], "--epochs must be >= 0"),
                                         (["--jobs", "0"], "--jobs must be at least 1"),
                                         (["--executor", "slurm"], "unknown executor 'slurm'; valid: local, ray")])
def test_bad_run_options_give_one_line(tmp_path, capsys, args, needle):
    from suite.cli import main

    assert main(["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--store",
                 str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
