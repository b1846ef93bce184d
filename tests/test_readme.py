"""The README's plugin example is code a user will paste: it must register and train."""
import re
from pathlib import Path

from suite.plugins import METHODS, discover_methods
from suite.runner import Runner
from suite.spec import CellSpec
from suite.store import Store

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_plugin_example_registers_and_trains(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    plugin = next(b for b in blocks if "class LabelSmoothing(Method)" in b)
    test = next(b for b in blocks if "def test_label_smoothing_trains" in b)
    discover_methods()
    if "label_smoothing" not in METHODS:
        exec(compile(plugin, "README.md", "exec"), {})
    assert METHODS.get("label_smoothing").family == "training"
    namespace = {}
    exec(compile(test, "README.md", "exec"), namespace)  # the README's own test of the plugin, run as written
    namespace["test_label_smoothing_trains"](tmp_path / "readme_test")
    runner = Runner(Store(tmp_path / "s.sqlite"), tmp_path / "a", device="cpu", progress=False, log=lambda *_: None)
    cells = runner.plan([CellSpec.make("label_smoothing", "lenet5", "synthetic_mnist", "smoke",
                                       params={"smoothing": 0.2})])
    summary = runner.run(cells)
    assert summary.failed == {} and len(summary.done) == 1
    assert runner.store.get(cells[0].key)["metrics"]["params_resolved"] == {"smoothing": 0.2}
