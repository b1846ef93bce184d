"""mdistiller's own distillers run through the suite: `--methods mdistiller:DKD` (any name of its
`distiller_dict`).

mdistiller (megvii-research/mdistiller, MIT) is not on PyPI: install it with
`pip install git+https://github.com/megvii-research/mdistiller` or put a checkout on PYTHONPATH; its
config defaults need `yacs`. The adapter wraps the suite's student and teacher in mdistiller's model
interface (`forward -> (logits, {"feats", "preact_feats", "pooled_feat"})`, `get_stage_channels`,
`get_bn_before_relu`), builds mdistiller's distiller class with its config defaults
(`mdistiller/engine/cfg.py`; `--methods "mdistiller:DKD[overrides=DKD.BETA 2.0 DKD.T 4.0]"` overrides keys), and trains it
through the suite's harness, data, recipe, store and tables: mdistiller's `forward_train` gives the loss
terms (its CE included) and `get_learnable_parameters` what the optimiser updates. So "DKD" (the suite's)
and "mdistiller:DKD" can stand in one table.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from suite.distill import Distiller, TeacherParams
from suite.plugins import METHODS, PluginError

PREFIX = "mdistiller:"


class MdistillerModel(nn.Module):
    """A suite model seen through mdistiller's model interface."""

    def __init__(self, model: nn.Module, image_size: int = 32) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size  # of the probe that reads the stage shapes (the cell's dataset's)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        f = self.model.forward_with_features(x)
        preact = [f.stem, *f.preact] if f.preact is not None else None
        return f.logits, {"feats": [f.stem, *f.stages], "preact_feats": preact, "pooled_feat": f.embedding}

    @torch.no_grad()
    def _shapes(self) -> list[torch.Size]:
        p = next(self.model.parameters())
        x = torch.zeros(1, self.model.stem[0].in_channels, self.image_size, self.image_size, device=p.device)
        was = self.model.training
        self.model.eval()
        f = self.model.forward_with_features(x)
        self.model.train(was)
        return [t.shape for t in [f.stem, *f.stages]]

    def get_stage_channels(self) -> list[int]:
        return [s[1] for s in self._shapes()]

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return self.model.bn_before_relu()


def import_mdistiller():
    try:
        return importlib.import_module("mdistiller.distillers")
    except ImportError:
        raise PluginError("mdistiller is not importable: `pip install git+https://github.com/megvii-research/mdistiller` "
                          "or put its checkout on PYTHONPATH") from None


def default_config():
    """mdistiller's config defaults (engine/cfg.py). Loaded as a module of a bare stand-in for the
    `mdistiller.engine` package: the real package's __init__ imports its trainer (tensorboardX, wandb),
    which the distillers do not need; cfg.py itself needs yacs and its sibling utils.py."""
    import sys
    import types

    import mdistiller

    if "_mdistiller_engine" not in sys.modules:
        package = types.ModuleType("_mdistiller_engine")
        package.__path__ = [str(Path(mdistiller.__file__).parent / "engine")]
        sys.modules["_mdistiller_engine"] = package
    try:
        module = importlib.import_module("_mdistiller_engine.cfg")
    except ImportError as exc:
        raise PluginError(f"mdistiller's config needs {exc.name} (pip install {exc.name})") from None
    return module.CFG.clone()


@dataclasses.dataclass(frozen=True)
class AdapterParams(TeacherParams):
    overrides: str = ""  # mdistiller config keys and values, space separated: "DKD.BETA 2.0 DKD.T 4.0"


class MdistillerDistiller(Distiller):
    """Base of the adapter classes; `key` is the distiller_dict name."""
    Params = AdapterParams
    key = ""

    def config(self, overrides: str):
        cfg = default_config()
        cfg.merge_from_list(overrides.split())  # yacs: key value key value ...
        return cfg

    def run(self, ctx):
        student = self.build_model(ctx.spec, ctx.info, ctx.params).to(ctx.device)
        teacher = self.load_teacher(ctx)
        cls = import_mdistiller().distiller_dict[self.key]
        size = ctx.info.image_size
        args = (MdistillerModel(student, size), MdistillerModel(teacher, size), self.config(ctx.params.overrides))
        if self.key == "CRD":
            raise PluginError("mdistiller:CRD needs its dataset's contrastive indices and moves its sampler to "
                              "CUDA when built; use the suite's `crd`")
        distiller = cls(*args).to(ctx.device)

        def losses(model, x, y, step):
            logits, terms = distiller.forward_train(image=x, target=y, epoch=step.epoch)
            return logits, terms

        ctx.fit(student, losses=losses, extra_modules=distiller, params=distiller.get_learnable_parameters(),
                frozen=distiller.teacher)
        return student


def adapter_class(name: str) -> type[MdistillerDistiller]:
    """The registered adapter for `mdistiller:KEY` (registered on first use)."""
    if name in METHODS:
        return METHODS.get(name)
    key = name[len(PREFIX):]
    known = import_mdistiller().distiller_dict
    if key not in known or key == "NONE":
        raise PluginError(f"mdistiller has no distiller {key!r}; valid: "
                          f"{', '.join(PREFIX + k for k in known if k != 'NONE')}")
    cls = type(f"Mdistiller{key}", (MdistillerDistiller,),
               {"name": name, "key": key, "version": "1", "label": f"{key} (mdistiller)",
                "description": f"mdistiller's own {key} distiller through the suite's harness"})
    return METHODS.register(name, cls)
