"""Collects the training throughputs the benchmarks measure and prints them as one table at the end."""
from __future__ import annotations

import pytest

THROUGHPUT: dict[tuple[str, str, str], float] = {}  # (model, loop, precision) -> images per second (best round)


@pytest.fixture
def record_throughput():
    def record(model: str, loop: str, precision: str, images_per_second: float) -> None:
        THROUGHPUT[(model, loop, precision)] = images_per_second
    return record


def pytest_terminal_summary(terminalreporter):
    if PEER:
        write_peer_table(terminalreporter.write_line)
    if not THROUGHPUT:
        return
    import torch

    write = terminalreporter.write_line
    write("")
    write(f"training throughput, images/s (best round; torch {torch.__version__}, {torch.get_num_threads()} threads)")
    write(f"{'model':9s} {'precision':9s} {'raw loop':>9s} {'fit':>9s} {'fit/raw':>8s} {'fit vs fp32':>11s}")
    models = dict.fromkeys(m for m, _, _ in THROUGHPUT)
    for model in models:
        for precision in ("fp32", "bf16"):
            raw, fit = THROUGHPUT.get((model, "raw", precision)), THROUGHPUT.get((model, "fit", precision))
            base = THROUGHPUT.get((model, "fit", "fp32"))
            ratio = f"{fit / raw:8.3f}" if raw and fit else f"{'n/a':>8s}"
            speed = f"{fit / base:10.2f}×" if fit and base else f"{'n/a':>11s}"
            write(f"{model:9s} {precision:9s} {raw or 0:9.0f} {fit or 0:9.0f} {ratio} {speed}")


PEER: dict[tuple[str, str], float] = {}  # (case, side) -> images per second (best round)


@pytest.fixture
def record_peer():
    def record(case: str, side: str, images_per_second: float) -> None:
        PEER[(case, side)] = images_per_second
    return record


def write_peer_table(write) -> None:
    import torch

    write("")
    write(f"one epoch against mdistiller's pipeline, images/s (best round; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
    for case in dict.fromkeys(c for c, _ in PEER):
        sides = {s: v for (c, s), v in PEER.items() if c == case}
        theirs = sides.get("mdistiller")
        for side, value in sides.items():
            ratio = f"{value / theirs:6.2f}×" if theirs and side != "mdistiller" else ""
            write(f"{case:9s} {side:22s} {value:8.0f} {ratio}")
