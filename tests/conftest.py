"""Shared test configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")

# CI runs the property tests on a fixed sequence of examples (reproducible verdicts) and without
# per-example deadlines (a loaded 2-core machine is slow); locally they explore new examples.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the stored golden KPI files instead of comparing against them",
    )


@pytest.fixture(scope="session", autouse=True)
def _site_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs settle at their end and sign with a site key: keep test keys out of the user's home."""
    folder = tmp_path_factory.mktemp("site-keys")
    previous = os.environ.get("QUBIT_SIM_KEY_DIR")
    os.environ["QUBIT_SIM_KEY_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("QUBIT_SIM_KEY_DIR", None)
    else:
        os.environ["QUBIT_SIM_KEY_DIR"] = previous
