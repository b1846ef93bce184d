"""Runner, plugin contract and store: cells are cached by key, dependencies run once, failures stay local."""
from dataclasses import dataclass

import pytest

from suite.plugins import METHODS, Method, PluginError, discover_methods, register_method
from suite.spec import CellSpec
from suite.store import Store


@dataclass(frozen=True)
class FinetuneParams:
    lr_scale: float = 1.0


class FinetuneFromBaseline(Method):
    """A test plugin with a dependency: starts from the trained baseline, as EncodeNet or pruning do."""

    name = "test_finetune"
    Params = FinetuneParams

    def requires(self, spec, params):
        return {"baseline": spec.with_(method="baseline", params={})}

    def run(self, ctx):
        model = ctx.deps["baseline"].load_model()
        ctx.fit(model, recipe=ctx.recipe.with_(lr=ctx.recipe.lr * ctx.params.lr_scale), stage="finetune")
        ctx.record(baseline_top1=ctx.deps["baseline"].metrics["top1"])
        return model


class Exploding(Method):
    name = "test_exploding"

    def run(self, ctx):
        raise RuntimeError("boom\nsecond line is dropped")


discover_methods()
for cls in (FinetuneFromBaseline, Exploding):
    if cls.name not in METHODS:
        register_method(cls)


def spec(method="baseline", model="lenet5", dataset="synthetic_mnist", **kw):
    return CellSpec.make(method, model, dataset, "smoke", **kw)




def test_dependency_is_trained_once_for_two_dependents(tmp_path, make_runner):
    lines = []
    runner = make_runner(log=lines.append)
    cells = runner.plan([spec("test_finetune", params={"lr_scale": 0.5}), spec("test_finetune", params={"lr_scale": 0.1})])
    assert [c.spec.method for c in cells] == ["baseline", "test_finetune", "test_finetune"]
    summary = runner.run(cells)
    assert len(summary.done) == 3 and not summary.failed
    done = [line for line in lines if line.startswith("done ")]  # a progress line per finished cell, with its top-1
    assert len(done) == 3 and done[0].startswith(f"done {cells[0].label}: top-1 ") and done[-1].endswith("[3/3]")
    baseline = runner.store.get(cells[0].key)["metrics"]
    child = runner.store.get(cells[1].key)["metrics"]
    assert child["baseline_top1"] == baseline["top1"]
    assert child["deps"] == {"baseline": cells[0].key}
    again = make_runner().run(make_runner().plan([spec("test_finetune", params={"lr_scale": 0.5})]))
    assert again.done == [] and len(again.skipped) == 2  # a second run trains nothing


def test_a_chain_of_dependencies_runs_in_one_process_without_idle_waits(make_runner, monkeypatch):
    """The scheduler sleeps only while cells held by another process are all that is left: a dependent whose
    dependency just finished here starts at once (a 2 s wait per dependency level once slowed every chain)."""
    import suite.scheduler as S

    sleeps = []
    monkeypatch.setattr(S.time, "sleep", sleeps.append)
    runner = make_runner()
    summary = runner.run(runner.plan([spec("test_finetune")]))
    assert len(summary.done) == 2 and sleeps == []
    again = make_runner().run(make_runner().plan([spec("test_finetune", params={"lr_scale": 0.5})]))
    assert len(again.done) == 1 and len(again.skipped) == 1 and sleeps == []  # a cached dependency: no wait either


class OneWorkerRecorder:
    """An executor with one worker that finishes each cell at once, noting what the store held claimed then."""

    capacity = 1

    def __init__(self, store: Store) -> None:
        self.store, self.started = store, []

    def submit(self, cell, config, dep_metrics):
        from concurrent.futures import Future

        claimed = [r["key"] for r in self.store.rows() if r["status"] == "running"]
        self.started.append((cell.label, len(claimed)))
        future = Future()
        future.set_result(({"cell_seconds": 0.0}, {}))
        return future

    def shutdown(self) -> None:
        pass


def test_a_free_worker_takes_the_cell_that_starts_the_longest_chain_and_no_cell_is_claimed_before(make_runner):
    """Seed 1's baseline has a dependent, seed 0's none: with one worker seed 1 goes first, though planned second,
    and the store never holds more cells claimed than there are workers (another run may take the others)."""
    runner = make_runner()
    cells = runner.plan([spec(), spec("test_finetune", seed=1)])
    alone, first, dependent = cells
    assert (alone.spec.seed, first.spec.seed, dependent.spec.method) == (0, 1, "test_finetune")
    executor = OneWorkerRecorder(runner.store)
    summary = runner.run(cells, executor)
    assert len(summary.done) == 3
    assert executor.started == [(first.label, 1), (alone.label, 1), (dependent.label, 1)]


def test_keys_change_with_what_changes_results(tmp_path, make_runner):
    runner = make_runner()
    base = runner.resolve(spec()).key
    assert runner.resolve(spec(seed=1)).key != base
    assert runner.resolve(spec(recipe_overrides={"epochs": 2})).key != base
    assert runner.resolve(spec(params={"epochs_scale": 2.0})).key != base
    assert make_runner().resolve(spec()).key == base  # and only with that


def test_a_failing_cell_does_not_stop_the_others(tmp_path, make_runner):
    runner = make_runner()
    summary = runner.run(runner.plan([spec("test_exploding"), spec()]))
    assert len(summary.done) == 1 and len(summary.failed) == 1
    (key, reason), = summary.failed.items()
    assert reason == "RuntimeError: boom"
    assert runner.store.get(key)["status"] == "failed"


def test_force_retrains(tmp_path, make_runner):
    make_runner().run(make_runner().plan([spec()]))
    forced = make_runner(force=True)
    assert len(forced.run(forced.plan([spec()])).done) == 1


def test_unknown_method_parameter_fails_fast(tmp_path, make_runner):
    with pytest.raises(ValueError, match="no parameter.*lr_scal.*valid: lr_scale"):
        make_runner().resolve(spec("test_finetune", params={"lr_scal": 1}))


def test_contract_breaking_plugin_fails_at_registration_naming_it():
    class NoRun(Method):
        name = "test_norun"

    with pytest.raises(PluginError, match="'test_norun'.*run"):
        register_method(NoRun)

    @dataclass
    class Mutable:
        x: int = 1

    class BadParams(Method):
        name = "test_badparams"
        Params = Mutable

        def run(self, ctx):
            return None

    with pytest.raises(PluginError, match="'test_badparams'.*frozen"):
        register_method(BadParams)
    assert "test_norun" not in METHODS and "test_badparams" not in METHODS


def test_store_claims_are_exclusive_between_live_owners(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.sqlite")
    assert store.claim("k", {"a": 1}) == "claimed"
    import suite.store as S

    monkeypatch.setattr(S, "owner_id", lambda: "otherhost:1")
    monkeypatch.setattr(S, "_owner_alive", lambda owner, hb: True)
    assert store.claim("k", {"a": 1}) == "busy"
    monkeypatch.setattr(S, "_owner_alive", lambda owner, hb: False)  # the holder died: taken over
    assert store.claim("k", {"a": 1}) == "claimed"
    store.finish("k", {"top1": 1.0}, {})
    assert store.claim("k", {"a": 1}) == "done"


def test_a_distiller_written_against_an_older_contract_is_told_so_at_registration():
    """`loss_terms` gained a `step` argument (warm-ups, memory banks): a distiller without it fails in one line
    naming it and the expected signature, not in every cell it runs."""
    from suite.distill import Distiller

    class Old(Distiller):
        name = "test_old_distiller"

        def loss_terms(self, params, s, t, y, extra):
            return {}

    with pytest.raises(PluginError, match=r"'test_old_distiller'.*loss_terms.*expected loss_terms\(.*step"):
        register_method(Old)

    class Current(Distiller):
        name = "test_current_distiller"

        def loss_terms(self, params, s, t, y, extra, step):
            return {}

    register_method(Current)
    assert "test_old_distiller" not in METHODS and "test_current_distiller" in METHODS
    METHODS._items.pop("test_current_distiller")
