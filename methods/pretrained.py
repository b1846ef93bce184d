"""A model loaded from a checkpoint file, not trained: the suite's own state dict, or a file mdistiller or
RepDistiller publish for their teachers (suite/checkpoints.py reads both layouts). Its cell evaluates and measures
the loaded model like any other, so a table can show a published teacher's accuracy here, on this data, beside the
students distilled from it (the `kd` table's `--opt teacher_checkpoint=PATH`). The file's content hash is in the
cell's key."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from suite.context import CellContext
from suite.plugins import Method, register_method


@dataclass(frozen=True)
class PretrainedParams:
    checkpoint: str = ""  # path of the file (required: planning fails in one line without it)


@register_method
class Pretrained(Method):
    name = "pretrained"
    version = "1"
    family = "training"
    Params = PretrainedParams
    description = "a model loaded from a checkpoint (the suite's, mdistiller's or RepDistiller's layout), not trained"

    def key_inputs(self, params: PretrainedParams) -> dict[str, str]:
        from suite.checkpoints import file_sha256

        if not params.checkpoint:
            raise ValueError("method 'pretrained' needs checkpoint=PATH")
        return {"checkpoint_sha256": file_sha256(params.checkpoint)}

    def estimated_epochs(self, recipe, params) -> float:
        return 0.0

    def run(self, ctx: CellContext) -> nn.Module:
        from suite.checkpoints import SOURCES, load_checkpoint

        model = self.build_model(ctx.spec, ctx.info, ctx.params)
        ctx.record(checkpoint_source=SOURCES[load_checkpoint(model, ctx.params.checkpoint)])
        return model
