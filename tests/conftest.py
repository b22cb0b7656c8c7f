"""Shared fixtures: the real data sets, loaded once per test session from the labkit cache.

`make test` fetches and verifies the data before pytest starts, so a missing
data set here is an error in the setup, not a reason to skip.
"""
import matplotlib
import pytest

# Headless plots in this process only; kernels started by tests must keep the notebook's inline backend.
matplotlib.use("Agg")


def _load(loader):
    from labkit.data import DataUnavailableError

    try:
        return loader(verbose=False)
    except DataUnavailableError as exc:
        pytest.fail(f"real data set not available: run `make data` first.\n{exc}")


@pytest.fixture(scope="session")
def mnist():
    from labkit.data import load_mnist

    return _load(load_mnist)


@pytest.fixture(scope="session")
def fashion_mnist():
    from labkit.data import load_fashion_mnist

    return _load(load_fashion_mnist)
