"""Child processes start correctly even when ``__main__`` is a Streamlit page script (as AppTest
and ``streamlit run`` leave it): the page must not run in the child."""

from __future__ import annotations

import multiprocessing
import sys
import types
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from analysis.processes import main_module_hidden


def _square(x: int) -> int:
    return x * x


@pytest.fixture
def page_as_main(tmp_path: Path) -> Iterator[None]:
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('the page script ran in a child process')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(page)
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = fake
    yield
    sys.modules["__main__"] = saved


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_children_do_not_rerun_the_page_script(page_as_main: None, method: str) -> None:
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        with main_module_hidden():
            futures = [pool.submit(_square, n) for n in range(4)]
        assert [f.result(timeout=60) for f in futures] == [0, 1, 4, 9]
    main_file = sys.modules["__main__"].__file__
    assert main_file is not None and main_file.endswith("page.py")  # restored afterwards
