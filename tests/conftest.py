import pytest
import torch


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
