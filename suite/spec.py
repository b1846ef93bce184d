"""A cell: one (method, model, dataset, hyperparameters, profile, seed) training run, and its key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any


def _freeze(d: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((d or {}).items()))


@dataclass(frozen=True)
class CellSpec:
    method: str
    model: str
    dataset: str
    profile: str
    seed: int = 0
    params: tuple[tuple[str, Any], ...] = ()  # method hyperparameters that differ from the plugin's defaults
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    protocol: str = "default"  # which paper schedule the `paper` profile follows (see suite/profiles.py)
    recipe_overrides: tuple[tuple[str, Any], ...] = ()  # e.g. (("epochs", 2),): changes the profile's recipe for this cell

    @classmethod
    def make(cls, method: str, model: str, dataset: str, profile: str, seed: int = 0, *,
             params: dict | None = None, model_kwargs: dict | None = None, protocol: str = "default",
             recipe_overrides: dict | None = None) -> "CellSpec":
        return cls(method, model, dataset, profile, seed, _freeze(params), _freeze(model_kwargs), protocol,
                   _freeze(recipe_overrides))

    def baseline(self) -> "CellSpec":
        """The trained `baseline` of this cell's model, data, profile, protocol and seed: what compression, early
        exit and EncodeNet start from (the one home of that rule)."""
        return self.with_(method="baseline", params={})

    def with_(self, **changes: Any) -> "CellSpec":
        for k in ("params", "model_kwargs", "recipe_overrides"):
            if isinstance(changes.get(k), dict):
                changes[k] = _freeze(changes[k])
        return replace(self, **changes)

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def recipe_overrides_dict(self) -> dict[str, Any]:
        return dict(self.recipe_overrides)

    @property
    def model_kwargs_dict(self) -> dict[str, Any]:
        return dict(self.model_kwargs)

    def label(self) -> str:
        p = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.method}{'[' + p + ']' if p else ''}/{self.model}/{self.dataset}/{self.profile}/seed{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "model": self.model, "dataset": self.dataset, "profile": self.profile,
                "seed": self.seed, "params": dict(self.params), "model_kwargs": dict(self.model_kwargs),
                "protocol": self.protocol, "recipe_overrides": dict(self.recipe_overrides)}


def stable_hash(payload: dict[str, Any]) -> str:
    """Hash of a JSON-serialisable payload, independent of key order."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]
