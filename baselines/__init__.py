"""Model architectures the papers use, behind one registry. Every module here registers on import."""
import importlib
import pkgutil

from baselines.base import ClassifierHead, Features, StagedClassifier
from baselines.registry import MODELS, create_model, model_label, model_names, model_revision, register_model

# Import every module of the package so that "not in the registry" never means "file not imported".
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"base", "registry"}:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["MODELS", "ClassifierHead", "Features", "StagedClassifier", "create_model", "model_label", "model_names", "model_revision",
           "register_model"]
