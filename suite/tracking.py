"""Per-epoch training history, as every stage of every cell records it (`metrics["stages"][i]["history"]`: per
epoch the train loss and accuracy, the learning rate of its first step, its seconds and images/s; never a test-set
figure), written as TensorBoard event files (`--tensorboard DIR`) and drawn as a table's training curves."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

SCALARS = {"loss": "train_loss", "train_acc": "train_acc", "lr": "lr", "epoch_seconds": "epoch_seconds",
           "images_per_second": "images_per_second"}  # history field -> TensorBoard tag (under the stage's name)


def run_name(label: str, key: str) -> str:
    """A cell's TensorBoard run: its label (its slashes group runs in TensorBoard's run list) and key."""
    return f"{label}@{key[:10]}"


def summary_writer():
    """torch's SummaryWriter class, or one line on how to install what it needs (checked before anything trains)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'") from None
    return SummaryWriter


def write_tensorboard(folder: Path, cells: list, store) -> int:
    """One run per finished cell under `folder` (rewritten, never appended to, when written again): per stage and
    epoch the figures of SCALARS. Returns the runs written."""
    SummaryWriter = summary_writer()
    written = 0
    for cell in cells:
        row = store.get(cell.key)
        if not row or row["status"] != "done":
            continue
        run = Path(folder) / run_name(cell.label, cell.key)
        if run.exists():
            shutil.rmtree(run)
        with SummaryWriter(str(run)) as writer:
            for stage in (row["metrics"] or {}).get("stages") or []:
                for entry in stage.get("history") or []:
                    for field, tag in SCALARS.items():
                        if entry.get(field) is not None:
                            writer.add_scalar(f"{stage['stage']}/{tag}", entry[field], entry["epoch"])
        written += 1
    return written


def main_history(metrics: dict[str, Any]) -> list[dict]:
    """The history of a cell's last training stage (the one that made its model: a student after FT's
    paraphraser, the classifier after EncodeNet's autoencoder)."""
    stages = [s for s in metrics.get("stages") or [] if s.get("history")]
    return stages[-1]["history"] if stages else []
