"""The papers' reported figures (paper_figures.csv): the only place they live in the project."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

FILE = Path(__file__).with_name("paper_figures.csv")
PAPERS = {"encodenet": "EncodeNet (arXiv:2404.13770)", "caenet": "CAE-Net", "compression": "Compression (Shah et al.)",
          "repdistiller": "RepDistiller / CRD (README)", "mdistiller": "mdistiller (README)"}


class Reported(NamedTuple):
    value: float
    paper: str
    table: str
    note: str
    selection: str = ""  # "last" | "best" (the best test-set epoch) | "" = not stated by the source
    runs: int | None = None  # how many runs the figure summarises; None = not stated
    statistic: str = ""  # "mean" | "median" | "single" | "" = not stated

    @property
    def source(self) -> str:
        return f"{self.paper} {self.table}"

    @property
    def protocol(self) -> str:
        """How the source obtained the figure, as far as it says: e.g. "best epoch, runs ?"."""
        epoch = {"last": "last epoch", "best": "best epoch"}.get(self.selection, "epoch ?")
        runs = f"{self.statistic or 'summary'} of {self.runs} runs" if self.runs else "runs ?"
        return f"{epoch}, {runs}"


@lru_cache(maxsize=1)
def load() -> dict[tuple[str, str, str, str], Reported]:
    with open(FILE, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {(r["paper"], r["table"], r["row"], r["column"]):
                Reported(float(r["value"]), r["paper"], r["table"], r["note"], r["selection"],
                         int(r["runs"]) if r["runs"] else None, r["statistic"]) for r in rows}


class UnknownFigure(KeyError):
    """A key paper_figures.csv does not hold, asked for as a figure the source reports."""

    def __str__(self) -> str:
        return self.args[0]


REQUESTED: dict[tuple[str, str, str, str], bool] = {}  # every key asked for -> optional; read by the tests


def reported(paper: str, table: str, row: str, column: str, optional: bool = False) -> Reported | None:
    """The figure `paper` reports in `table` at (`row`, `column`). A key the CSV does not hold raises
    (a typo in a table must not read as "the paper does not report it") unless the caller declares the
    figure optional: one the source may not report (e.g. a distiller its table leaves out); then None."""
    key = (paper, table, row, column)
    REQUESTED[key] = REQUESTED.get(key, True) and optional
    found = load().get(key)
    if found is None and not optional:
        raise UnknownFigure(f"paper_figures.csv has no figure {paper}/{table}/{row}/{column}: a typo, or pass "
                            "optional=True where the source does not report it")
    return found
