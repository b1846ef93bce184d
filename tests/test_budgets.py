"""Budget as a dimension: budgets in cell keys (a budget's cells reused, a new one trained), a teacher at its own
recipe, milestones stretched, and a verdict that changes between budgets reported as changing."""
import re

import pytest

import suite
from suite.budgets import budget_header, holds_across
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


def test_the_budget_header_gives_what_differs_between_budgets_once_per_budget():
    header = ["# kd", "", "- Seeds: 3", "- Device: {device}", "- Rank agreement: Kendall's τ = {tau}"]
    merged = budget_header({
        "×1": [line.format(device="A (19 cells)", tau="-1.00") for line in header],
        "×4": [line.format(device="B (18 cells)", tau="+0.33") for line in header] + ["- Only at ×4: yes"]})
    assert merged == ["# kd", "", "- Seeds: 3", "- Budget ×1: Device: A (19 cells)", "- Budget ×4: Device: B (18 cells)",
                      "- Budget ×1: Rank agreement: Kendall's τ = -1.00",
                      "- Budget ×4: Rank agreement: Kendall's τ = +0.33", "- Budget ×4: Only at ×4: yes"]


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
    header = (tmp_path / "out" / "budget_compare.md").read_text()
    assert ("- Command: `python run_all.py --table compare --methods baseline --dataset synthetic_mnist --model lenet5 "
            "--seeds 1 --precision auto --budgets x1,x2`") in header
    assert re.search(r"- Cost \(training, the cells' own clocks\): ×1 \(1 ep\): [0-9.]+ h over 1 cells; "
                     r"×2 \(2 ep\): [0-9.]+ h over 1 cells", header)
    assert main([*args, "--budgets", "x1,zz"]) == 2
    assert "a budget is N epochs or xK" in capsys.readouterr().err


def test_budgets_dry_run_trains_nothing_and_save_progress_carries_a_budget_campaign(tmp_path, capsys):
    """A budget campaign spans sessions like any other: --dry-run plans every budget (training nothing),
    --save-progress writes the finished cells of every budget to budget_<table>.cells.jsonl, and another machine's
    store imports them as finished cells of the same budgets."""
    import json

    from suite.store import Store

    common = ["--quiet", "--profile", "smoke", "--dataset", "synthetic_mnist", "--table", "compare",
              "--methods", "baseline", "--model", "lenet5"]
    first = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "a.sqlite"), *common]
    assert main([*first, "--budgets", "x1,x2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "== budget_compare at budget x1" in out and "== budget_compare at budget x2" in out
    assert out.count("to train") == 2 and not Store(tmp_path / "a.sqlite").rows() and not (tmp_path / "out").exists()

    progress = tmp_path / "progress"  # saved as it trains, cell by cell
    assert main([*first, "--budgets", "x1,x2", "--progress-dir", str(progress)]) == 0  # trains both budgets
    capsys.readouterr()
    assert main([*first, "--budgets", "x1,x2", "--save-progress"]) == 0
    records = tmp_path / "out" / "budget_compare.cells.jsonl"
    assert "budget_compare: 2 records" in capsys.readouterr().out
    keys = sorted(json.loads(line)["key"] for line in records.read_text().splitlines())
    assert sorted(json.loads(line)["key"] for line in (progress / "budget_compare.cells.jsonl").open()) == keys
    budgets = sorted(str(json.loads(line)["spec"].get("recipe_overrides", {}).get("budget"))
                     for line in records.read_text().splitlines())
    assert budgets == ["None", "x2"]  # x1 is the profile's own: the plain cell

    second = ["--out", str(tmp_path / "out2"), "--store", str(tmp_path / "b.sqlite"), *common]
    assert main([*second, "--import-records", str(records), "--budgets", "x1,x2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "imported 2" in out and out.count("cached") == 2 and "to train" not in out


def test_budgets_render_only_trains_nothing_and_shows_unfinished_cells_as_pending(tmp_path, capsys):
    args = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.sqlite"), "--quiet", "--profile", "smoke",
            "--dataset", "synthetic_mnist", "--table", "compare", "--methods", "baseline", "--model", "lenet5"]
    assert main(args) == 0  # the plain table: budget x1's cells, x2 untrained
    capsys.readouterr()
    assert main([*args, "--budgets", "x1,x2", "--render-only"]) == 0
    out = capsys.readouterr().out
    assert "training " not in out and "rendered from the store" in out
    table = (tmp_path / "out" / "budget_compare.md").read_text()
    assert "×2 (2 ep)" in table and "pending" in table
    from suite.store import Store

    assert len([r for r in Store(tmp_path / "s.sqlite").rows() if r.get("status") == "done"]) == 1

    for refused in (["--remeasure"], ["--render-only", "--from-records"]):
        assert main([*args, "--budgets", "x1,x2", *refused]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "take one budget at a time" in err


def test_budgets_only_trains_the_matching_cells_of_every_budget(tmp_path, capsys):
    from suite.store import Store

    args = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.sqlite"), "--profile", "smoke", "--seeds", "2",
            "--dataset", "synthetic_mnist", "--table", "compare", "--methods", "baseline", "--model", "lenet5"]
    assert main([*args, "--budgets", "x1,x2", "--only", "seed0"]) == 0
    trained = [l for l in capsys.readouterr().out.splitlines() if l.startswith("training ")]
    assert len(trained) == 2 and all("seed0" in l for l in trained)
    done = [r for r in Store(tmp_path / "s.sqlite").rows() if r.get("status") == "done"]
    assert len(done) == 2


def test_a_pruning_budget_is_a_fine_tuning_budget_over_the_one_trained_baseline(make_runner):
    """Pruning (and compression) keep the baseline they prune at its own recipe: every budget prunes the same trained
    model and only the fine-tuning grows; a table that keeps only the teacher (encodenet) retrains its baseline."""
    from suite.api import plan_table, table_options
    from suite.tables import get_table

    runner = make_runner()
    opts = table_options("smoke", 1, "synthetic_mnist")
    pruning = get_table("pruning")
    plain, longer = (plan_table(r, pruning, opts) for r in (runner, runner.at_budget("x4", pruning.budget_keeps)))
    reference = next(cells[0] for row, cells in zip(longer.rows, longer.row_cells) if row.role == "reference")
    assert reference.key in {c.key for c in plain.cells}  # the untouched baseline row: the same cell
    pruned = [c for c in longer.cells if c.spec.method in ("prune", "structured_prune")]
    assert pruned and all(c.deps["baseline"].key == reference.key for c in pruned if c.spec.model == reference.spec.model)
    for cell in pruned:
        plain_cell = next(c for c in plain.cells if c.spec.method == cell.spec.method and c.spec.params == cell.spec.params
                          and c.spec.model == cell.spec.model)
        assert cell.key != plain_cell.key and cell.recipe.epochs == 4 * plain_cell.recipe.epochs

    encodenet = get_table("encodenet")
    retrained = plan_table(runner.at_budget("x4", encodenet.budget_keeps), encodenet, opts)
    baselines = [c for c in retrained.cells if c.spec.method == "baseline"]
    assert baselines and all(c.key not in {p.key for p in plan_table(runner, encodenet, opts).cells} for c in baselines)


def test_budget_teacher_takes_only_the_teacher_out_of_the_kept_roles():
    from suite.budgets import kept_roles

    assert kept_roles(("teacher", "baseline", "reference"), False) == ("teacher", "baseline", "reference")
    assert kept_roles(("teacher", "baseline", "reference"), True) == ("baseline", "reference")


def test_a_budget_campaign_with_a_kept_baseline_imports_on_another_machine(tmp_path, capsys):
    """Pruning keeps its baseline at its own recipe under --budgets, so a ×2 cell's key hashes the plain baseline's:
    its records import elsewhere (none stale), and each cell is written once though both budgets' tables hold the
    baseline."""
    import json

    common = ["--quiet", "--profile", "smoke", "--dataset", "synthetic_mnist", "--table", "pruning",
              "--methods", "prune[compression=4]", "--only", "lenet5", "--budgets", "x1,x2"]
    first = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "a.sqlite"), *common]
    assert main(first) == 0
    capsys.readouterr()
    records = tmp_path / "out" / "budget_pruning.cells.jsonl"
    keys = [json.loads(line)["key"] for line in records.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 5  # the baseline, and control + pruned row at each budget

    second = ["--out", str(tmp_path / "out2"), "--store", str(tmp_path / "b.sqlite"), *common]
    assert main([*second, "--import-records", str(records), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "imported 5" in out and "stale 0" in out and "to train" not in out
