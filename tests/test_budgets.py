"""Budget as a dimension: budgets in cell keys (a budget's cells reused, a new one trained), a teacher at its own
recipe, milestones stretched, and a verdict that changes between budgets reported as changing."""
import pytest

import suite
from suite.budgets import holds_across
from suite.cli import main
from suite.profiles import Recipe, budget_epochs


def test_a_budget_stretches_epochs_and_milestones():
    recipe = Recipe(epochs=10, batch_size=64, lr=0.05, schedule="multistep", milestones=(6, 8, 9))
    assert recipe.with_budget("x4").epochs == 40 and recipe.with_budget("x4").milestones == (24, 32, 36)
    assert recipe.with_budget("20").milestones == (12, 16, 18)
    assert budget_epochs("×0.5", 10) == 5
    for bad in ("", "x", "x-1", "abc", "-3"):
        with pytest.raises(ValueError, match="a budget is N epochs or xK"):
            budget_epochs(bad, 10)


def test_holds_across_names_the_budget_where_a_verdict_changes():
    budgets = ["×1", "×4"]
    assert holds_across(["better (q = 0.010)", "better (q = 0.002)"], budgets) == "yes"
    assert holds_across(["better (q = 0.010)", "within noise (q = 0.300)"], budgets) == "changes at ×4"
    assert holds_across(["within noise (q = 0.5)", "worse (q = 0.01)"], budgets) == "changes at ×4"
    assert holds_across(["within noise (q = 0.5)", "within noise (q = 0.9)"], budgets) == "within noise everywhere"
    assert holds_across(["n = 1: no verdict", "better (q = 0.01)"], budgets) == "no verdict"
    assert holds_across(["—", "—"], budgets) == "—"


def test_budgets_are_cells_of_their_own_and_a_teacher_keeps_its_recipe(tmp_path, capsys):
    common = dict(profile="smoke", dataset="synthetic_mnist", seeds=2, store=tmp_path / "runs" / "store.sqlite",
                  progress=False)
    result = suite.run_budgets("compare", "x1,x2", methods=["baseline", "kd"], model="lenet5_half", teacher="lenet5",
                               out=tmp_path / "out", **common)
    assert list(result.per_budget) == ["×1 (1 ep)", "×2 (2 ep)"]
    one, two = result.per_budget.values()
    teacher = {r.spec.method + r.spec.model: r.key for r in one.cells}["baselinelenet5"]
    assert teacher in {c.key for c in two.cells}  # the same teacher cell at both budgets
    students = lambda r: {c.key for c in r.cells if c.spec.model == "lenet5_half"}
    assert not students(one) & students(two)  # every other cell is the budget's own
    assert all(c.recipe.epochs == 2 for c in two.cells if c.spec.model == "lenet5_half")
    assert "Verdict holds across budgets" in result.display.columns
    assert set(result.frame["budget"]) == {"×1 (1 ep)", "×2 (2 ep)"} and len(result.frame) == 6
    assert (tmp_path / "out" / "budget_compare.md").exists() and (tmp_path / "out" / "budget_compare.cells.jsonl").exists()
    capsys.readouterr()

    again = suite.run_budgets("compare", "x2,3", methods=["baseline", "kd"], model="lenet5_half", teacher="lenet5",
                              **common)  # x2 is cached, 3 epochs trains
    log = capsys.readouterr().out
    assert log.count("training ") == 4 and all("seed" in l for l in log.splitlines() if l.startswith("training"))
    assert {c.key for c in again.per_budget["×2 (2 ep)"].cells} == {c.key for c in two.cells}


def test_budgets_from_the_command_line(tmp_path, capsys):
    args = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.sqlite"), "--quiet", "--profile", "smoke",
            "--dataset", "synthetic_mnist", "--table", "compare", "--methods", "baseline", "--model", "lenet5"]
    assert main([*args, "--budgets", "x1,x2"]) == 0
    assert "budgets ×1 (1 ep), ×2 (2 ep), failed 0" in capsys.readouterr().out
    assert main([*args, "--budgets", "x1,zz"]) == 2
    assert "a budget is N epochs or xK" in capsys.readouterr().err
