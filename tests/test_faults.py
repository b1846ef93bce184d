"""Fault injection: what a run survives (README, "What survives what"). Real subprocesses on synthetic data:
a worker killed mid-cell, the driver killed mid-epoch, a truncated checkpoint, an unwritable artifacts folder,
a killed resource tracker, bad parameters."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# two cells: LeNet-5 on synthetic MNIST with seeds 0 and 1, one torch thread each
SMOKE = ["--table", "baselines", "--profile", "smoke", "--dataset", "synthetic_mnist", "--seeds", "2", "--quiet",
         "--threads", "1"]
PATIENCE = 600  # seconds; generous: the machine may be busy with other training


def suite_cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_all.py"), *SMOKE, "--store", str(tmp_path / "runs" / "store.sqlite"),
            "--out", str(tmp_path / "results"), *extra]


def store_rows(tmp_path: Path) -> dict[str, tuple[str, dict | None]]:
    path = tmp_path / "runs" / "store.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT key, status, metrics FROM cells").fetchall()
    except sqlite3.OperationalError:  # the table is being created
        rows = []
    db.close()
    return {k: (s, json.loads(m) if m else None) for k, s, m in rows}


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of a process's direct children (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            out.append((int(child), cmdline))
    return out


def workers(pid: int) -> list[int]:
    return [c for c, cmd in children(pid) if "spawn_main" in cmd]


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + PATIENCE
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the run ended before {what}"
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_worker_killed_mid_cell_fails_only_that_cell_which_is_retried_and_finishes(tmp_path):
    proc = subprocess.Popen(suite_cmd(tmp_path, "--jobs", "2", "--epochs", "80"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    artifacts = tmp_path / "runs" / "artifacts"
    wait_for(lambda: len(workers(proc.pid)) == 2 and len(list(artifacts.glob("*/main.ckpt"))) == 2, proc,
             "an epoch checkpoint of both cells")
    os.kill(workers(proc.pid)[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, out
    died = [line for line in out.splitlines() if line.startswith("worker died:")]
    assert len(died) == 1, out
    assert died[0].startswith("worker died: signal 9 (SIGKILL) while training baseline/lenet5/synthetic_mnist/smoke/seed")
    assert " at epoch " in died[0] and died[0].endswith("; retrying from its last epoch checkpoint (retry 1 of 1)")
    assert "trained 2, cached 0, failed 0" in out and "Traceback" not in out
    rows = store_rows(tmp_path)
    assert len(rows) == 2 and all(s == "done" for s, _ in rows.values())
    resumed = [m["stages"][0] for _, m in rows.values() if m["stages"][0]["epochs_run"] < 80]
    assert len(resumed) == 1  # the retried cell went on from its checkpoint instead of starting over


def test_with_no_retries_a_killed_worker_fails_its_cell_with_one_line_and_the_other_finishes(tmp_path):
    proc = subprocess.Popen(suite_cmd(tmp_path, "--jobs", "2", "--epochs", "80", "--retries", "0"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    artifacts = tmp_path / "runs" / "artifacts"
    wait_for(lambda: len(workers(proc.pid)) == 2 and list(artifacts.glob("*/main.ckpt")), proc, "an epoch checkpoint")
    os.kill(workers(proc.pid)[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 1
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1 and ": worker died: signal 9 (SIGKILL) while training " in failed[0], out
    assert "trained 1, cached 0, failed 1" in out and "Traceback" not in out
    assert sorted(s for s, _ in store_rows(tmp_path).values()) == ["done", "failed"]


def test_a_killed_driver_takes_its_workers_with_it(tmp_path):
    proc = subprocess.Popen(suite_cmd(tmp_path, "--jobs", "2", "--epochs", "400"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    artifacts = tmp_path / "runs" / "artifacts"
    wait_for(lambda: len(workers(proc.pid)) == 2 and list(artifacts.glob("*/main.ckpt")), proc, "an epoch checkpoint")
    pids = workers(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)  # no orphan goes on training a cell nobody records


def test_driver_killed_mid_epoch_then_rerun_keeps_finished_cells_and_resumes_to_an_uninterrupted_runs_figures(
        tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(suite_cmd(whole, "--epochs", "40"), cwd=ROOT, check=True, capture_output=True, timeout=PATIENCE)
    proc = subprocess.Popen(suite_cmd(killed, "--epochs", "40"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    artifacts = killed / "runs" / "artifacts"
    # the first cell done and the second one checkpointed, then kill -9 mid-epoch
    wait_for(lambda: "done" in [s for s, _ in store_rows(killed).values()] and list(artifacts.glob("*/main.ckpt")),
             proc, "one finished cell and a checkpoint of the other")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sorted(s for s, _ in store_rows(killed).values()) == ["done", "running"]  # left claimed by a dead process
    rerun = subprocess.run(suite_cmd(killed, "--epochs", "40"), cwd=ROOT, capture_output=True, text=True,
                           timeout=PATIENCE)
    assert rerun.returncode == 0, rerun.stderr
    assert "trained 1, cached 1" in rerun.stdout  # the finished cell is not retrained
    resumed, reference = store_rows(killed), store_rows(whole)
    assert resumed.keys() == reference.keys() and all(s == "done" for s, _ in resumed.values())
    assert min(m["stages"][0]["epochs_run"] for _, m in resumed.values()) < 40  # one of them did resume
    for key, (_, metrics) in resumed.items():  # and ends where an uninterrupted run with the same seed ends
        assert metrics["top1"] == reference[key][1]["top1"]
        assert metrics["robust_top1"] == reference[key][1]["robust_top1"]


def test_a_machine_lost_mid_campaign_leaves_the_finished_cells_in_progress_dir_and_another_continues(tmp_path):
    """--progress-dir saves each finished cell's record as it goes: the driver killed (the machine lost) after the
    first cell, a fresh store elsewhere imports what the folder holds and trains only the other cell."""
    progress = tmp_path / "progress"
    records = progress / "baselines.cells.jsonl"
    lost = tmp_path / "lost"
    proc = subprocess.Popen(suite_cmd(lost, "--epochs", "40", "--progress-dir", str(progress)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: records.exists() and records.read_text().strip(), proc, "the first cell's record saved")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = [json.loads(line) for line in records.read_text().splitlines()]
    done = [k for k, (status, _) in store_rows(lost).items() if status == "done"]
    assert [r["key"] for r in saved] == done and len(done) == 1 and saved[0]["status"] == "done"
    other = tmp_path / "other"
    rerun = subprocess.run(suite_cmd(other, "--epochs", "40", "--import-records", str(records)), cwd=ROOT,
                           capture_output=True, text=True, timeout=PATIENCE)
    assert rerun.returncode == 0, rerun.stderr
    assert "trained 1, cached 1" in rerun.stdout
    assert store_rows(other)[done[0]][1]["top1"] == saved[0]["metrics"]["top1"]


def test_an_unwritable_progress_dir_is_one_line_before_anything_trains(tmp_path):
    (tmp_path / "file").write_text("")
    run = subprocess.run(suite_cmd(tmp_path, "--progress-dir", str(tmp_path / "file" / "progress")), cwd=ROOT,
                         capture_output=True, text=True, timeout=PATIENCE)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1 and "--progress-dir" in errors[0] and "not writable" in errors[0]
    assert not store_rows(tmp_path)


def test_a_truncated_checkpoint_is_set_aside_with_one_line_and_training_starts_over(tmp_path, capsys):
    from baselines import create_model
    from suite.data import load_dataset
    from suite.harness import fit
    from suite.profiles import Recipe

    data, recipe = load_dataset("synthetic_mnist"), Recipe(epochs=2, batch_size=64, lr=0.02)
    checkpoint = tmp_path / "main.ckpt"
    fit(create_model("lenet5", num_classes=10, in_chans=1), data.train, data.info, recipe.with_(epochs=1),
        checkpoint=checkpoint, progress=False)
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])  # what a failing disk leaves (the suite writes and renames)
    capsys.readouterr()
    result = fit(create_model("lenet5", num_classes=10, in_chans=1), data.train, data.info, recipe,
                 checkpoint=checkpoint, progress=False)
    assert result.epochs_run == 2  # from the start, not a crash
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"checkpoint {checkpoint} unreadable (")
    assert err[0].endswith("set aside as main.ckpt.bad, training from epoch 1")
    assert (tmp_path / "main.ckpt.bad").read_bytes() == whole[: len(whole) // 2]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2


def test_an_unwritable_artifacts_folder_is_one_line_before_anything_trains(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifacts folder should be (as a full or read-only disk refuses it)")
    run = subprocess.run(suite_cmd(tmp_path, "--artifacts", str(blocker / "artifacts")), cwd=ROOT,
                         capture_output=True, text=True, timeout=PATIENCE)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: the artifacts folder {blocker / 'artifacts'} is not writable "
                                               f"(Not a directory)"]
    assert store_rows(tmp_path) == {} or all(s != "done" for s, _ in store_rows(tmp_path).values())


def test_a_killed_resource_tracker_leaves_the_run_finishing_without_tracebacks(tmp_path):
    proc = subprocess.Popen(suite_cmd(tmp_path, "--jobs", "2", "--epochs", "40"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def tracker() -> list[int]:
        return [c for c, cmd in children(proc.pid) if "resource_tracker" in cmd]

    wait_for(lambda: tracker() and len(workers(proc.pid)) == 2, proc, "the resource tracker and two workers")
    os.kill(tracker()[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "KeyError" not in out, out
    assert "trained 2, cached 0, failed 0" in out
