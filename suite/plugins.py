"""The method plugin contract and its registry.

A method is a small class registered with `@register_method`. It declares
- `name`: the registry name; `version`: bump it when a change alters results (it is part of the cell key);
- `Params`: a frozen dataclass of hyperparameters with the defaults of its paper; the interval of each numeric
  field in its `ranges` (checked by `make_params`), rules across fields in `__post_init__` (raise ValueError),
  so a bad value fails while planning, before anything trains; a field added after cells were published is
  named in its `added_later` and enters the cell key only where it differs from its default (`key_params`),
  so the published cells keep their keys;
- `requires(spec, params)`: the cells it depends on (a teacher, a trained baseline), by role;
- `build_model(spec, info, params)`: the architecture it trains (default: the registered model as is);
- `restore(spec, info, params, state)`: its saved model rebuilt from the state dict (default: build_model +
  load_state_dict), so every finished cell can be re-measured and be a dependency;
- `timing_model(spec, info, params)`: a model doing the cell's inference work without its saved weights, so
  `--remeasure` re-times a cell whose model is not on this machine (default: build_model where restore is the
  default one; None, "only from its saved model", where the architecture follows from training or the work
  from the input);
- `run(ctx)`: what makes it different, expressed through `ctx.fit(...)`; returns the final model.
- `classifies`: False for an intermediate stage (EncodeNet's targets, its autoencoder) whose result is
  an artifact other cells read, not a classifier: the runner then skips test evaluation and measurement.
The harness evaluates, measures, checkpoints and stores; a method never writes its own loop.

Discovery: every module in the `methods` package, plus modules or classes named by the
`suite.methods` entry-point group, so a method can live in its own pip package.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import pkgutil
import re
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from torch import nn

from suite.registry import Registry

if TYPE_CHECKING:
    from suite.context import CellContext
    from suite.data import DatasetInfo
    from suite.profiles import Recipe
    from suite.spec import CellSpec


# A family's contract (README, "Add a method"): what a member needs. The table that shows every member says so
# itself (`Table.family`).
FAMILIES = {
    "baseline": "trains the registered model as it is (the reference of every other family)",
    "distiller": "a student trained with a teacher's help: on suite.distill.Distiller, Params with `teacher`",
    "compression": "starts from the trained `baseline` cell of its model (requires it) and makes it smaller or faster",
    "attention": "changes a ResNet's blocks and trains it like the baseline",
    "training": "changes how the same architecture is trained (EncodeNet, label smoothing, mixup, ...)",
    "early_exit": "adds exits to a trained baseline and decides per input where to leave",
}


class PluginError(TypeError):
    """A plugin breaks the contract; raised at registration, naming the plugin."""


@dataclasses.dataclass(frozen=True)
class NoParams:
    pass


class Method:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Params: ClassVar[type] = NoParams
    description: ClassVar[str] = ""
    family: ClassVar[str] = ""  # what kind of method it is (FAMILIES); "" = an internal stage, shown by no family table
    label: ClassVar[str] = ""  # its name in tables (default: its registry name)
    inference_device: ClassVar[str | None] = None  # e.g. "cpu" for int8 models that only run there
    inference_precision: ClassVar[str | None] = None  # e.g. "fp32" for int8 models; None = the cell's precision
    classifies: ClassVar[bool] = True  # False: an intermediate stage; run() may return None
    # the artifact its dependents read: what a campaign carries to another machine so the cell is not retrained
    saved_file: ClassVar[str] = "model.pt"
    columns: ClassVar[tuple] = ()  # MetricColumns for the metrics it records (suite.columns.MetricColumn)

    def requires(self, spec: "CellSpec", params: Any) -> dict[str, "CellSpec"]:
        return {}

    def build_model(self, spec: "CellSpec", info: "DatasetInfo", params: Any) -> nn.Module:
        from baselines import create_model

        return create_model(spec.model, num_classes=info.num_classes, in_chans=info.in_chans, **spec.model_kwargs_dict)

    def restore(self, spec: "CellSpec", info: "DatasetInfo", params: Any, state: dict[str, Any]) -> nn.Module:
        """The cell's saved model from its state dict (override when the architecture depends on training)."""
        model = self.build_model(spec, info, params)
        model.load_state_dict(state)
        return model

    def timing_model(self, spec: "CellSpec", info: "DatasetInfo", params: Any) -> nn.Module | None:
        """A model with the cell's architecture and fresh weights, timed in place of its saved model where that is
        not on this machine (dense kernels take the same time whatever the weights hold). None where the work
        depends on what training left (an architecture read from the weights: `restore` overridden, unless the
        method builds that architecture here; an int8 program) or on the input (early exit)."""
        if type(self).restore is not Method.restore:
            return None
        return self.build_model(spec, info, params)

    def run(self, ctx: "CellContext") -> nn.Module:
        raise NotImplementedError

    def measure(self, ctx: "CellContext", model: nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
        """Figures that replace or add to the harness's measurements (a compressed artifact's size,
        the parameter count of an int8 model). Default: none."""
        return {}

    def estimated_epochs(self, recipe: "Recipe", params: Any) -> float:
        """Full training epochs' worth of compute this cell costs (for `--dry-run` estimates only)."""
        return float(recipe.epochs)

    def key_params(self, params: Any) -> dict[str, Any]:
        """The resolved params as they enter the cell key: every field, except an `added_later` one at its default
        (a field added to a published method: the cells trained before it existed, at its default, keep their keys)."""
        later = getattr(params, "added_later", ())
        defaults = {f.name: f.default for f in dataclasses.fields(params)}
        return {k: v for k, v in dataclasses.asdict(params).items() if k not in later or v != defaults[k]}

    def key_inputs(self, params: Any) -> dict[str, str]:
        """Content hashes of the files a cell reads besides its data and dependencies (a teacher checkpoint):
        part of its key, so a changed file is a new cell. Raises ValueError (one line) for a missing file."""
        return {}

    def make_params(self, overrides: dict[str, Any]) -> Any:
        """The plugin's Params with `overrides` applied; unknown names fail with the valid ones listed."""
        valid = {f.name for f in dataclasses.fields(self.Params)}
        unknown = set(overrides) - valid
        if unknown:
            raise ValueError(f"method {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(sorted(valid)) or 'none'}")
        typed = self.typed_overrides(overrides)
        ranges = param_ranges(self.Params)
        for field, value in typed.items():
            if field in ranges:
                check_range(self.name, field, ranges[field], value)
        return self.Params(**typed)

    def typed_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """`overrides` in the types of the Params defaults (see `typed_value`)."""
        defaults = self.Params()
        return {k: typed_value(self.name, k, getattr(defaults, k), v) for k, v in overrides.items()}


def typed_value(method: str, field: str, default: Any, value: Any) -> Any:
    """`value` in the type of the Params field's default (an int for a float field becomes a float, so the same
    setting makes the same cell key); a value of another type is one line naming method, field, type and value."""
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        raise ValueError(f"method {method!r}: parameter {field} takes a {kind.__name__} (default {default!r}), "
                         f"got {value!r}")
    return value


# The interval each numeric Params field may take, declared by its Params class as
#     ranges: ClassVar[dict[str, str]] = {"temperature": POSITIVE, "sparsity": "[0, 1)"}
# (merged down the class hierarchy, a subclass's entry winning) and checked in one place, `Method.make_params`,
# at planning: a bad value is one line before anything trains. Cross-field rules stay in `__post_init__`.
POSITIVE, NON_NEGATIVE, AT_LEAST_1, FRACTION = "(0, inf)", "[0, inf)", "[1, inf)", "[0, 1]"
_INTERVAL = re.compile(r"^([\[(])\s*(-inf|-?[0-9.e+-]+)\s*,\s*(inf|-?[0-9.e+-]+)\s*([\])])$")


def param_ranges(params_cls: type) -> dict[str, str]:
    """Field -> interval of a Params class, its bases' declarations included."""
    merged: dict[str, str] = {}
    for cls in reversed(params_cls.__mro__):
        merged.update(vars(cls).get("ranges", {}))
    return merged


def in_interval(interval: str, value: float) -> bool:
    match = _INTERVAL.match(interval)
    if match is None:
        raise PluginError(f"range {interval!r} is not an interval like '(0, inf)' or '[0, 1)'")
    left, low, high, right = match.groups()
    low, high = float(low), float(high)
    return (low < value or (left == "[" and low == value)) and (value < high or (right == "]" and value == high))


def check_range(method: str, field: str, interval: str, value: Any) -> None:
    if not in_interval(interval, value):
        raise ValueError(f"method {method!r}: parameter {field} must be in {interval}, got {value!r}")


def _validate(name: str, cls: Any) -> None:
    where = f"method plugin {name!r} ({getattr(cls, '__module__', '?')})"
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise PluginError(f"{where} breaks the contract: it must subclass suite.plugins.Method")
    if cls.name != name:
        raise PluginError(f"{where} breaks the contract: class attribute name={cls.name!r} differs from its registry name")
    if cls.run is Method.run:
        raise PluginError(f"{where} breaks the contract: it does not implement run(ctx)")
    if not (dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen):
        raise PluginError(f"{where} breaks the contract: Params must be a frozen dataclass")
    try:
        defaults = cls.Params()
    except TypeError as exc:
        raise PluginError(f"{where} breaks the contract: every Params field needs a default ({exc})") from None
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    for field, interval in param_ranges(cls.Params).items():
        if field not in fields:
            raise PluginError(f"{where} breaks the contract: Params.ranges names {field!r}, which is not a field")
        if not in_interval(interval, getattr(defaults, field)):
            raise PluginError(f"{where} breaks the contract: the default {field}={getattr(defaults, field)!r} is "
                              f"outside its range {interval}")
    if not isinstance(cls.version, str) or not cls.version:
        raise PluginError(f"{where} breaks the contract: version must be a non-empty string")
    if cls.family and cls.family not in FAMILIES:
        raise PluginError(f"{where} breaks the contract: family {cls.family!r} is not one of {', '.join(FAMILIES)}")
    _check_hook_signatures(cls, where)


CONTRACT_MODULES = ("suite.plugins", "suite.distill")  # where Method and Distiller define the hooks a plugin overrides


def _check_hook_signatures(cls: type, where: str) -> None:
    """Every hook the plugin overrides takes at least the arguments the contract passes it, so a plugin written
    against an older contract (say, a distiller's `loss_terms` without the `step` argument) fails here, in one
    line, rather than in every cell it runs."""
    for base in cls.__mro__[1:]:
        if base.__module__ not in CONTRACT_MODULES:
            continue
        for name, expected in vars(base).items():
            override = getattr(cls, name, None)
            if name.startswith("_") or not inspect.isfunction(expected) or override is expected \
                    or not inspect.isfunction(override):
                continue
            want, got = inspect.signature(expected), inspect.signature(override)
            if any(p.kind == p.VAR_POSITIONAL for p in got.parameters.values()):
                continue
            names = [p.name for p in got.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            needed = [p.name for p in want.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if len(names) < len(needed):
                raise PluginError(f"{where} breaks the contract: {name}{got} takes {len(names)} arguments, the "
                                  f"contract passes {len(needed)}: expected {name}{want}")


METHODS: Registry[type[Method]] = Registry("method", validate=_validate)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a method plugin under its `name` (validated now, not at run time), and add the
    columns it declares to the table catalogue."""
    from suite.columns import declare_columns

    name = getattr(cls, "name", "") or cls.__name__
    registered = METHODS.register(name, cls)
    declare_columns(getattr(cls, "columns", ()), name)
    return registered


_discovered = False


def discover_methods() -> Registry[type[Method]]:
    """Import every module of the `methods` package and every `suite.methods` entry point (once)."""
    global _discovered
    if not _discovered:
        import methods

        for info in pkgutil.iter_modules(methods.__path__):
            importlib.import_module(f"methods.{info.name}")
        for ep in importlib.metadata.entry_points(group="suite.methods"):
            obj = ep.load()
            if inspect.isclass(obj) and obj.name not in METHODS:
                register_method(obj)
        _discovered = True
    return METHODS


def namespace_resolvers() -> dict[str, Callable[[str], type[Method]]]:
    """`PREFIX:NAME` methods resolved by a package's `suite.method_namespaces` entry point (PREFIX = its name, the
    value a function NAME -> method class that registers it): mdistiller's own distillers (`mdistiller:DKD`,
    suite/mdistiller_adapter.py) come in this way, so this module imports no adapter."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group="suite.method_namespaces")}


def method_class(name: str) -> type[Method]:
    """A registered method; `PREFIX:NAME` (e.g. `mdistiller:DKD`) is registered by its namespace on first use."""
    prefix, sep, _ = name.partition(":")
    if sep and name not in METHODS:
        resolvers = namespace_resolvers()
        if prefix in resolvers:
            return resolvers[prefix].load()(name)
    return discover_methods().get(name)


def get_method(name: str) -> Method:
    return method_class(name)()


def family_members(family: str, first: tuple[str, ...] = ()) -> list[str]:
    """Registered methods of a family in a stable order: `first` (a table's paper order) then the others by name."""
    members = [n for n in discover_methods().names() if METHODS.get(n).family == family and ":" not in n]  # adapters: opt-in
    return [n for n in first if n in members] + [n for n in members if n not in first]


def display_name(name: str) -> str:
    return method_class(name).label or name
