"""The outside references the equivalence tests compare against: the unmodified snapshots of
mdistiller (MIT) and RepDistiller (BSD-2) kept beside this repository in `../shared/vendor` (or in the
folder named by $SUITE_VENDOR). Nothing is copied from them into the suite; tests import them as they are.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch


def vendor_dir() -> Path | None:
    if os.environ.get("SUITE_VENDOR"):
        return Path(os.environ["SUITE_VENDOR"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "vendor" / "mdistiller").is_dir():
            return parent / "shared" / "vendor"
    return None


def import_reference(package: str, folder: str):
    """Import `package` from the vendored `folder`, or skip with where to put it."""
    root = vendor_dir()
    if root is None or not (root / folder).is_dir():
        pytest.skip(f"{folder} snapshot not found (set SUITE_VENDOR to the folder holding it)")
    if str(root / folder) not in sys.path:
        sys.path.insert(0, str(root / folder))
    return importlib.import_module(package)


def copy_state_in_order(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Load `source`'s parameters and buffers into `target` entry by entry (same order and shapes)."""
    src, dst = list(source.state_dict().values()), target.state_dict()
    assert len(src) == len(dst), f"{len(src)} vs {len(dst)} state entries"
    for (name, value), other in zip(dst.items(), src):
        assert value.shape == other.shape, f"{name}: {tuple(value.shape)} vs {tuple(other.shape)}"
    target.load_state_dict(dict(zip(dst, src)))


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """|actual - expected| <= rel * max |expected| everywhere: agreement up to float rounding, judged
    against the tensor's own scale (deep untrained nets reach values in the hundreds)."""
    scale = expected.abs().max().clamp_min(1e-12)
    err = (actual - expected).abs().max()
    assert err <= rel * scale, f"max difference {err.item():.3g} > {rel:g} x {scale.item():.3g}"
