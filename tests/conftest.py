"""Fixtures shared by the whole suite.

* ``SHARED_DATASETS``: ``../shared/datasets`` beside the checkout, or ``None``; tests that use it are
  marked ``shared`` and skip cleanly when it is absent (a user's clone has no shared/).
* ``candor_env``: points CANDOR_DATA_DIR / CANDOR_DATABASE_URL at a fresh temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_shared = PROJECT_ROOT.parent / "shared" / "datasets"
SHARED_DATASETS: Path | None = _shared if _shared.is_dir() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATASETS is not None:
        return
    skip = pytest.mark.skip(reason="../shared/datasets is not present (internal test material)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def candor_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data directory with the default SQLite database inside it."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    return data


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
