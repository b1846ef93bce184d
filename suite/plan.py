"""Plan once: table rows plus the command line's overrides become fully resolved cells, exactly once.

A `ResolvedCell` carries everything needed to run, re-measure, cache or report it: its spec (with the
`--epochs` override applied), the method and its validated Params, the recipe it runs, its precision,
its dependencies (themselves resolved), the dataset's fingerprint, its key and whether it is forced.
Nothing downstream (scheduler, worker process, Ray task, `--remeasure`, report) resolves a profile or
a key again.

A cell's key hashes everything that changes its result: the spec, the method's version and resolved
hyperparameters, the resolved recipe, the dataset's fingerprint, the keys of its dependencies and,
when not fp32, the precision (so fp32 cells keep the keys they had before precision was a choice).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines import MODELS, model_revision
from suite.data import DATASETS, DataError, DatasetInfo, load_dataset
from suite.plugins import Method, get_method
from suite.profiles import PROFILES, Profile, Recipe, budget_epochs, dataset_family
from suite.spec import CellSpec, stable_hash


@dataclass(frozen=True)
class PlanOptions:
    """The command line's overrides, applied while planning and nowhere else."""

    epochs: int | None = None  # replaces the profile's epochs in every cell (part of the key)
    precision: str = "fp32"  # already resolved: "fp32" or "bf16"
    force: bool = False  # retrain cells even if stored
    only: str | None = None  # keep only cells whose label contains this (and what they need); force just those
    budget: str | None = None  # every cell at this training budget ("N" epochs or "xK"), in its key; see Recipe.with_budget
    budget_keeps: tuple[str, ...] = ("teacher",)  # roles kept at their own recipe (suite.budgets.kept_roles)

    def kept(self, role: str) -> bool:
        """Whether an upstream model (or a table row) of this role keeps its own recipe under the budget."""
        return role in self.budget_keeps

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"--epochs must be >= 0, got {self.epochs}")
        if self.budget is not None:
            budget_epochs(self.budget, 1)  # a malformed budget fails here, in one line
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"a plan needs a resolved precision (fp32 or bf16), got {self.precision!r}")


@dataclass
class ResolvedCell:
    spec: CellSpec
    key: str
    method: Method
    params: Any
    recipe: Recipe
    precision: str
    deps: dict[str, "ResolvedCell"]
    data_fingerprint: str | None  # None: the data could not be loaded (see data_error)
    data_error: str | None = None
    force: bool = False
    profile: Profile | None = None  # its profile, resolved once here: nothing after planning looks PROFILES up

    @property
    def label(self) -> str:
        return self.spec.label()

    @property
    def info(self) -> DatasetInfo:
        """The dataset's description (looked up by name: a cell travels to workers without loader code)."""
        return DATASETS.get(self.spec.dataset)

    def upstream_keys(self) -> set[str]:
        """Keys of every cell this one needs, transitively."""
        return set(cell_and_upstream(self)) - {self.key}


def cell_and_upstream(cell: ResolvedCell, seen: dict[str, None] | None = None) -> dict[str, None]:
    """The cell's key and, depth first, every key it depends on (first seen first, each once)."""
    seen = {} if seen is None else seen
    if cell.key not in seen:
        seen[cell.key] = None
        for dep in cell.deps.values():
            cell_and_upstream(dep, seen)
    return seen


def recipe_of(spec: CellSpec) -> Recipe:
    """The profile's recipe for the spec's kind of data and protocol, with the spec's overrides (a `budget`
    override stretches its epochs and milestones: Recipe.with_budget)."""
    recipe = PROFILES.get(spec.profile).recipe(dataset_family(DATASETS.get(spec.dataset).in_chans), spec.protocol)
    overrides = spec.recipe_overrides_dict
    budget = overrides.pop("budget", None)
    recipe = recipe.with_(**overrides) if overrides else recipe
    return recipe.with_budget(budget) if budget is not None else recipe


@dataclass
class Planner:
    data_dir: Path | None = None
    options: PlanOptions = field(default_factory=PlanOptions)
    _cells: dict[CellSpec, ResolvedCell] = field(default_factory=dict, repr=False)
    _data: dict[str, tuple[str | None, str | None]] = field(default_factory=dict, repr=False)

    def data_state(self, dataset: str) -> tuple[str | None, str | None]:
        """(fingerprint, None) or (None, why it cannot be loaded), once per dataset (a failed download too)."""
        if dataset not in self._data:
            try:
                self._data[dataset] = load_dataset(dataset, self.data_dir).fingerprint, None
            except DataError as exc:
                self._data[dataset] = None, str(exc)
        return self._data[dataset]

    def with_overrides(self, spec: CellSpec) -> CellSpec:
        overrides = dict(spec.recipe_overrides_dict)
        if self.options.epochs is not None:
            overrides["epochs"] = self.options.epochs
        if "budget" in overrides and overrides["budget"] is None:  # exempt (a table's teacher row): the plain cell
            del overrides["budget"]
        elif self.options.budget is not None and recipe_of(spec.with_(recipe_overrides={**overrides, "budget": self.options.budget})) \
                != recipe_of(spec.with_(recipe_overrides=overrides)):  # the profile's own budget is the plain cell
            overrides["budget"] = self.options.budget
        return spec.with_(recipe_overrides=overrides) if overrides != spec.recipe_overrides_dict else spec

    def dependency(self, role: str, spec: CellSpec) -> CellSpec:
        """A dependency as it is trained: one of a kept role (a teacher, unless --budget-teacher; the baseline of a
        table whose budget is a fine-tuning budget) keeps its own recipe, every other upstream stage (EncodeNet's
        stages) has its dependent's budget."""
        if self.options.kept(role) and "budget" in spec.recipe_overrides_dict:
            return spec.with_(recipe_overrides={k: v for k, v in spec.recipe_overrides_dict.items() if k != "budget"})
        return spec

    def resolve(self, spec: CellSpec) -> ResolvedCell:
        """The resolved cell of a table's spec (overrides applied; dependencies resolved first)."""
        return self._resolve(self.with_overrides(spec))

    def _resolve(self, spec: CellSpec) -> ResolvedCell:
        if spec in self._cells:
            return self._cells[spec]
        method = get_method(spec.method)
        params = method.make_params(spec.params_dict)  # Params validate themselves: bad values fail here
        if not spec.model.startswith("timm:"):
            MODELS.get(spec.model)  # an unknown model fails now, before anything trains
        DATASETS.get(spec.dataset)  # an unknown dataset fails now
        fingerprint, error = self.data_state(spec.dataset)
        recipe = recipe_of(spec)
        deps = {role: self._resolve(self.dependency(role, dep)) for role, dep in method.requires(spec, params).items()}
        payload = {"spec": spec.as_dict(), "method_version": method.version, "params": method.key_params(params),
                   "recipe": recipe.as_dict(), "data": fingerprint or f"missing:{spec.dataset}",
                   "deps": {role: d.key for role, d in deps.items()}}
        if self.options.precision != "fp32":
            payload["precision"] = self.options.precision
        inputs = method.key_inputs(params)
        if inputs:  # files the cell reads (a teacher checkpoint), by content; other keys stay as they were
            payload["inputs"] = inputs
        if model_revision(spec.model) > 1:  # a changed layout retrains; other keys stay as they were
            payload["model_revision"] = model_revision(spec.model)
        cell = ResolvedCell(spec, stable_hash(payload), method, params, recipe, self.options.precision, deps,
                            fingerprint, error, profile=PROFILES.get(spec.profile))
        self._cells[spec] = cell
        return cell

    def plan(self, specs: list[CellSpec]) -> list[ResolvedCell]:
        """Unique cells, every dependency before the cells that need it; `only` and `force` applied."""
        ordered: dict[str, ResolvedCell] = {}

        def visit(cell: ResolvedCell) -> None:
            if cell.key not in ordered:
                for dep in cell.deps.values():
                    visit(dep)
                ordered[cell.key] = cell

        for spec in specs:
            visit(self.resolve(spec))
        cells = list(ordered.values())
        wanted = {c.key for c in cells if self.options.only is None or self.options.only in c.label}
        if not wanted:
            raise ValueError(f"--only {self.options.only!r} matches no cell")
        needed = wanted.union(*(c.upstream_keys() for c in cells if c.key in wanted))
        for cell in cells:
            cell.force = self.options.force and cell.key in wanted  # with --only, just the matching cells
        return [c for c in cells if c.key in needed]

    def rows(self, specs_by_row: list[list[CellSpec]]) -> list[list[ResolvedCell]]:
        """Each table row's resolved cell per seed (what the report reads)."""
        return [[self.resolve(s) for s in specs] for specs in specs_by_row]
