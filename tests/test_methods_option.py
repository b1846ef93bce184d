"""A new method reaches a table without touching the suite: families, --methods, the `compare` table."""
import dataclasses
import re

import pytest

from suite.cli import main
from suite.plugins import METHODS


def cli(run_dir, *args):
    return main(["--out", str(run_dir["out"]), "--store", str(run_dir["store"]), "--quiet", *args])


# A distiller written from the README alone, shipped as its own package with a `suite.methods` entry point.
OUT_OF_TREE = '''
from dataclasses import dataclass

import torch.nn.functional as F

from suite.distill import Distiller, TeacherParams


@dataclass(frozen=True)
class LogitMatchParams(TeacherParams):
    weight: float = 1.0


class LogitMatch(Distiller):
    name = "logit_match"
    version = "1"
    Params = LogitMatchParams

    def loss_terms(self, params, s, t, y, extra, step):
        return {"logit_mse": params.weight * F.mse_loss(s.logits, t.logits)}
'''


@pytest.fixture
def out_of_tree_package(tmp_path, monkeypatch):
    """`pip install`-equivalent of a package `logit_match_plugin` (module + dist-info entry point) on sys.path;
    the registry is restored afterwards so other tests do not see the plugin."""
    import suite.plugins as P

    site = tmp_path / "site"
    (site / "logit_match_plugin").mkdir(parents=True)
    (site / "logit_match_plugin" / "__init__.py").write_text(OUT_OF_TREE)
    info = site / "logit_match_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: logit-match-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[suite.methods]\nlogit_match = logit_match_plugin:LogitMatch\n")
    monkeypatch.syspath_prepend(str(site))
    P.discover_methods()
    monkeypatch.setattr(P.METHODS, "_items", dict(P.METHODS._items))  # registrations below are undone after
    monkeypatch.setattr(P, "_discovered", False)
    yield


def test_an_out_of_tree_distiller_appears_in_the_kd_table_and_trains(run_dir, out_of_tree_package, capsys):
    args = ["--table", "kd", "--profile", "smoke", "--dataset", "synthetic_cifar100", "--opt", "pairs=resnet8:resnet8"]
    assert cli(run_dir, *args, "--dry-run") == 0
    assert "logit_match" in METHODS and "logit_match[teacher=resnet8]/resnet8/" in capsys.readouterr().out  # a default row
    assert cli(run_dir, *args, "--methods", "logit_match") == 0  # trained (alone, to keep the test short)
    row = next(line for line in (run_dir["out"] / "kd.md").read_text().splitlines() if line.startswith("| logit_match"))
    assert re.search(r"\| \d+\.\d\d +\| 1 ", row), row  # trained: a top-1 and n = 1
    capsys.readouterr()
    assert cli(run_dir, *args, "--methods=-logit_match", "--dry-run") == 0  # left out (`=`: "-x" reads as an option)
    plan = capsys.readouterr().out
    assert "kd[teacher=resnet8]/resnet8/" in plan and "logit_match" not in plan


def test_methods_add_remove_and_replace_rows(run_dir, capsys):
    base = ["--table", "kd", "--profile", "smoke", "--dataset", "synthetic_cifar100", "--opt", "pairs=resnet8:resnet8",
            "--dry-run"]
    assert cli(run_dir, *base, "--methods=-rkd,-fitnet,-ft,+kd[temperature=2]") == 0
    plan = capsys.readouterr().out
    assert "rkd[" not in plan and "fitnet[" not in plan and "kd[teacher=resnet8,temperature=2.0]" in plan
    assert cli(run_dir, *base, "--methods", "kd") == 0  # a list replaces the rows; teacher and student stay
    plan = capsys.readouterr().out
    assert re.findall(r"  (\w+)(?:\[.*?\])?/resnet8/", plan) == ["baseline", "baseline", "kd"]


@pytest.mark.parametrize("args,needle", [
    (["--table", "kd", "--methods", "+nosuch"], "unknown method 'nosuch'; valid: "),
    (["--table", "kd", "--methods", "+prune"], "'prune' is a compression method; table 'kd' shows distiller methods"),
    (["--table", "kd", "--methods", "+kd[temperature]"], "parameters of 'kd' take key=value"),
    (["--table", "kd", "--methods", "+kd,rkd"], "either replace the list"),
    (["--table", "kd", "--methods", "kd[[x=1]]"], "cannot read"),
    (["--table", "kd", "--methods", "+kd[temprature=2]"], "no parameter.*temprature.*valid: "),
    (["--table", "compression", "--methods", "+prune[sparsity=1.5]"],
     r"^error: method 'prune': parameter sparsity must be in \[0, 1\), got 1.5$"),
    (["--table", "kd", "--methods", "+kd[temperature=-1]"],
     r"^error: method 'kd': parameter temperature must be in \(0, inf\), got -1.0$"),
    (["--table", "kd", "--dry-run", "--methods", "+kd[temperature=-1]"], r"temperature must be in \(0, inf\)"),
    (["--table", "kd", "--methods", "+kd[kd_weight=-0.5]"], r"parameter kd_weight must be in \[0, inf\), got -0.5$"),
    (["--table", "kd", "--methods", "+crd[negatives=0]"], r"parameter negatives must be in \[1, inf\), got 0$"),
    (["--table", "compression", "--methods", "+cluster[bits=9]"], r"parameter bits must be in \[1, 8\], got 9$"),
    (["--table", "kd", "--methods", "+kd[temperature=abc]"], r"'kd': parameter temperature takes a float.*'abc'"),
    (["--table", "kd", "--dry-run", "--methods", "+kd[temperature=abc]"], "parameter temperature takes a float"),
    (["--table", "compression", "--methods", "+prune[prune_classifier=1]"], "prune_classifier takes a bool"),
    (["--table", "compare", "--methods", "baseline,kd"], "table 'compare' needs --model"),
    (["--table", "compare", "--model", "lenet9", "--methods", "baseline,kd"], "unknown model 'lenet9'"),
])
def test_bad_methods_give_one_line_before_anything_trains(run_dir, capsys, args, needle):
    assert cli(run_dir, *args, "--profile", "smoke", "--dataset", "synthetic_cifar100") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(needle, err), err
    assert not (run_dir["out"] / "kd.md").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("teacher", [[], ["--teacher", "lenet5"]])
def test_compare_puts_methods_side_by_side_with_a_verdict_against_the_first(run_dir, capsys, teacher):
    methods = "baseline,kd" if teacher else "baseline,prune[sparsity=0.5],kd[teacher=lenet5_half]"
    assert cli(run_dir, "--table", "compare", "--methods", methods, "--model", "lenet5", "--dataset", "synthetic_mnist",
               "--profile", "smoke", "--seeds", "2", *teacher) == 0
    md = (run_dir["out"] / "compare.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| baseline ") and ("| KD (Hinton) " in md if teacher else "| prune [sparsity=0.5] " in md)
    assert all("pending" not in r and "failed" not in r for r in rows)
    assert re.search(r"\| (better|worse|within noise) ", rows[-1]), rows[-1]  # 2 seeds each side: a verdict
    assert (run_dir["out"] / "compare_top1_intervals.png").exists()


def test_every_numeric_parameter_of_every_method_declares_its_range():
    """Each Params states its valid ranges (checked at planning by Method.make_params, issue 29)."""
    from suite.plugins import METHODS, discover_methods, param_ranges

    discover_methods()
    missing = []
    for name in METHODS.names():
        if not METHODS.get(name).__module__.startswith("methods."):
            continue  # a plugin a test registered on the fly
        params = METHODS.get(name).Params
        ranges = param_ranges(params)
        missing += [f"{name}.{f.name}" for f in dataclasses.fields(params)
                    if type(getattr(params(), f.name)) in (int, float) and f.name not in ranges]
    assert missing == []


@pytest.mark.parametrize("ranges, needle", [({"nosuch": "[0, 1]"}, "names 'nosuch', which is not a field"),
                                            ({"weight": "(0, 1)"}, "default weight=1.0 is outside its range (0, 1)")])
def test_a_plugin_whose_ranges_do_not_fit_its_params_is_refused_at_registration(ranges, needle):
    from suite.plugins import Method, PluginError, register_method

    @dataclasses.dataclass(frozen=True)
    class P:
        weight: float = 1.0

    P.ranges = ranges

    class Bad(Method):
        name = "bad_ranges"
        Params = P

        def run(self, ctx):
            return None

    with pytest.raises(PluginError, match=re.escape(needle)):
        register_method(Bad)


@pytest.mark.parametrize("interval, inside, outside", [("(0, inf)", [1e-9, 5.0], [0.0, -1.0]),
                                                       ("[0, 1)", [0.0, 0.999], [1.0, -1e-9]),
                                                       ("[-1, inf)", [-1, 0, 7], [-2]),
                                                       ("[1, 8]", [1, 8], [0, 9])])
def test_intervals_hold_their_ends_as_written(interval, inside, outside):
    from suite.plugins import in_interval

    assert all(in_interval(interval, v) for v in inside) and not any(in_interval(interval, v) for v in outside)


def test_methods_with_params_keep_a_fixed_tables_own_rows():
    """`--methods "prune[compression=4]"` on the pruning table keeps its 4x global-magnitude rows (the params resolved
    with the method's defaults, so the row's scope and criterion need not be spelled) beside its reference and control."""
    from suite.api import table_options
    from suite.tables import get_table, select_methods

    table = get_table("pruning")
    opts = table_options("cpu", 1, None, "prune[compression=4],prune[compression=16]")
    rows = select_methods(table, opts, table.rows(table_options("cpu", 1)))
    picked = [(r.labels["Method"], r.labels["Ratio (asked)"]) for r in rows if not r.role]
    assert picked == [("Global magnitude", "4×"), ("Global magnitude", "16×")] * 2  # LeNet-5, then ResNet20, in order
    assert [r.role for r in rows][:2] == ["reference", "control"] and len(rows) == 8
