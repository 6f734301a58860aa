"""Test setup: offline tokenizer ranks, and Triton kernels on the CPU interpreter."""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

# tiktoken would download the r50k ranks; CI is offline, so point it at the copy in ../shared.
if (SHARED / "tiktoken").is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

# Without a GPU, Triton kernels run through NumPy. This must be set before triton is imported.
if not os.environ.get("CUDA_VISIBLE_DEVICES") and not pathlib.Path("/dev/nvidia0").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end tests (still run by CI)")


@pytest.fixture
def one_thread():
    """Tiny models' matmuls: one torch thread is fastest, and fair to whoever else shares the machine."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def humaneval():
    """The HumanEval problems, from the offline copy in ../shared/data."""
    from evaluate import load_problems
    return load_problems("humaneval", data_dir=SHARED / "data")


@pytest.fixture(scope="session")
def mbpp():
    """MBPP's 500 test problems, from the offline copy in ../shared/data."""
    from evaluate import load_problems
    return load_problems("mbpp", data_dir=SHARED / "data")
