"""Teacher checkpoints from elsewhere: the suite's own state dicts, and the files mdistiller and RepDistiller publish
(mdistiller's `cifar_teachers.tar`, RepDistiller's `fetch_pretrained_teachers.sh`: `{"model": state_dict, "epoch": ...,
"best_acc" or "accuracy": ...}`, keys named as their models name them, e.g. `layer1.0.conv1.weight`), also as saved
from `nn.DataParallel` (`module.` prefixes) or as mdistiller's trainer saves a distiller (`module.student.`).

The suite's CIFAR ResNets and VGGs have mdistiller's layout (tests/test_mdistiller_reference.py): same entries in the
same order with the same shapes, so a file in their naming is loaded entry by entry in order, each shape checked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

WRAPPERS = ("module.student.", "student.", "module.")  # mdistiller's distiller checkpoint, DataParallel
SOURCES = {"suite": "the suite's state dict", "reference": "mdistiller / RepDistiller checkpoint layout"}


def file_sha256(path: str | Path) -> str:
    """The content hash that enters the key of every cell using the file (a changed file retrains)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"checkpoint {path} not found")
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_of(obj: object) -> dict[str, torch.Tensor]:
    """The model state inside a checkpoint object: the dict itself, or its "model" / "state_dict" entry; wrapper
    prefixes removed and a distiller's teacher entries dropped."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("holds no state dict (a dict of tensors, or one under 'model' / 'state_dict')")
    for prefix in WRAPPERS:
        if any(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in obj.items() if not k.startswith("teacher.")}


def load_checkpoint(model: nn.Module, path: str | Path, what: str = "checkpoint") -> str:
    """Load `path` into `model` (either layout); returns which layout it was (a key of SOURCES). Raises ValueError
    with one line (starting with `what`) naming the first entry that does not fit."""
    path = Path(path).expanduser()
    try:
        state = state_of(torch.load(path, map_location="cpu", weights_only=True))
    except ValueError as exc:
        raise ValueError(f"{what} {path} {exc}") from None
    except Exception as exc:
        raise ValueError(f"{what} {path} is unreadable ({type(exc).__name__})") from None
    ours = model.state_dict()
    if state.keys() == ours.keys():
        model.load_state_dict(state)
        return "suite"
    if len(state) != len(ours):
        raise ValueError(f"{what} {path} has {len(state)} entries, {type(model).__name__} has {len(ours)}: "
                         "not this model's layout")
    for (name, value), (theirs, other) in zip(ours.items(), state.items()):
        if value.shape != other.shape:
            raise ValueError(f"{what} {path}: entry {theirs} {tuple(other.shape)} does not fit {name} "
                             f"{tuple(value.shape)}: not this model's layout")
    model.load_state_dict(dict(zip(ours, state.values())))
    return "reference"
