"""A cell's training time, estimated before it runs: `--dry-run` totals it, the scheduler starts the cells of the
longest remaining chain first (a long chain started last leaves workers idle at the end of a campaign)."""
from __future__ import annotations

from suite.data import DataError, load_dataset
from suite.plan import ResolvedCell

_FLOPS: dict[tuple, float] = {}


def forward_flops(cell: ResolvedCell) -> float:
    """Forward FLOPs of one image through the cell's model (counted once per model, parameters and data)."""
    import torch

    from suite.measure import count_flops

    info = cell.info
    what = (cell.spec.method, cell.spec.model, cell.spec.dataset, cell.spec.params, cell.spec.model_kwargs)
    if what not in _FLOPS:  # seeds and shared dependencies build the same model: count it once
        model = cell.method.build_model(cell.spec, info, cell.params)
        _FLOPS[what] = count_flops(model, torch.randn(1, info.in_chans, info.image_size, info.image_size)) or 1e8
    return _FLOPS[what]


def training_images(cell: ResolvedCell) -> int:
    """The size of the cell's training set, where the default data folder has it (an estimate: else 50,000)."""
    if cell.data_fingerprint is None:
        return 50000
    try:
        return len(load_dataset(cell.spec.dataset, None).train)
    except (DataError, OSError):  # planned from another --data-dir
        return 50000


def estimate_seconds(cell: ResolvedCell, device_type: str) -> float:
    """Rough wall clock from FLOPs (calibrated on 2 CPU cores: ResNet20 ~440 img/s, LeNet-5 ~11k img/s in fp32; bf16
    about twice as fast): a training image costs three forward passes of the model (forward and backward), plus one
    of its teacher's where it has a teacher cell (a distiller; AlexNet's forward is 16x AlexNet-small's)."""
    teacher = cell.deps.get("teacher")
    flops = 3 * forward_flops(cell) + (forward_flops(teacher) if teacher is not None else 0.0)
    per_image = flops / 1e11 + 5e-5
    if device_type == "cuda":
        per_image /= 50
    elif cell.precision == "bf16":
        per_image /= 2
    n_train = cell.recipe.train_subset or training_images(cell)
    return cell.method.estimated_epochs(cell.recipe, cell.params) * n_train * per_image


def remaining_chain_seconds(cells: list[ResolvedCell], to_train: set[str], device_type: str) -> dict[str, float]:
    """Per cell, the estimated seconds of the longest chain of cells still to train that starts at it and runs
    through the cells that depend on it (`cells` dependency-ordered, as planned; a finished cell costs nothing)."""
    dependents: dict[str, list[str]] = {c.key: [] for c in cells}
    for cell in cells:
        for dep in cell.deps.values():
            dependents.setdefault(dep.key, []).append(cell.key)
    chain: dict[str, float] = {}
    for cell in reversed(cells):  # dependents come after their dependencies
        own = estimate_seconds(cell, device_type) if cell.key in to_train else 0.0
        chain[cell.key] = own + max((chain.get(k, 0.0) for k in dependents[cell.key]), default=0.0)
    return chain
