import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_test_process():
    # Before any fixture of wider scope than a test (a module's shared teacher) trains: two workers, two cores.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _small_torch():
    # Tests run on 2 cores next to other work; one intra-op thread keeps them predictable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_dir(tmp_path):
    return {"store": tmp_path / "runs" / "store.sqlite", "out": tmp_path / "results"}


@pytest.fixture
def make_runner(tmp_path):
    """A quiet CPU runner on a fresh store in tmp_path (pass force=True etc. as keywords)."""
    from suite.runner import Runner
    from suite.store import Store

    def make(**kw):
        kw.setdefault("log", lambda *_: None)
        return Runner(Store(tmp_path / "store.sqlite"), tmp_path / "artifacts", device="cpu", progress=False, **kw)

    return make
