"""Reported figures: a key paper_figures.csv does not hold is an error unless the table declares it optional."""
from __future__ import annotations

import pytest

from suite import reference
from suite.cli import main
from suite.profiles import PROFILES
from suite.tables import discover_tables


def test_an_unknown_key_raises_and_an_optional_one_is_none():
    assert reference.reported("encodenet", "T5", "resnet50", "top1") is not None
    with pytest.raises(reference.UnknownFigure, match="encodenet/T5/resnet5O/top1"):
        reference.reported("encodenet", "T5", "resnet5O", "top1")  # a typo
    assert reference.reported("encodenet", "T5", "resnet5O", "top1", optional=True) is None


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("table", discover_tables().names())
def test_every_table_asks_only_for_known_or_optional_figures(table, profile, tmp_path):
    """Rendering plans every row and looks up its reported figures; nothing trains (empty store)."""
    extra = ["--model", "resnet20", "--methods", "baseline,kd", "--teacher", "resnet56"] if table == "compare" else []
    reference.REQUESTED.clear()
    rc = main(["--table", table, "--profile", profile, "--render-only", "--out", str(tmp_path),
               "--store", str(tmp_path / "store.sqlite"), "--precision", "fp32", *extra])
    assert rc == 0
    unknown = [k for k, optional in reference.REQUESTED.items() if not optional and k not in reference.load()]
    assert unknown == []
