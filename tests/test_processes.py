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

# imported at collection, so its fork server preload is set before a test here starts the server
from analysis.photos import worker
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


def _echo(data: bytes, *, view: str | None) -> tuple[int, str | None]:
    return len(data), view


def test_a_photo_worker_never_reruns_the_page_even_unhidden(
    page_as_main: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``streamlit run`` another thread's script run can put the page back into
    ``sys.modules["__main__"]`` while a worker starts; simulated here by not hiding it at all.
    The fork server's guard (analysis.forkserver_guard) keeps the child from running it (without
    it the child ran page.py, exited, and the job came back as a crash)."""
    from contextlib import nullcontext

    monkeypatch.setattr(worker, "main_module_hidden", nullcontext)
    result = worker.analyse_in_worker(b"12345", view="face_frontal", target=f"{__name__}:_echo")
    assert (result.outcome, result.measurement) == ("ok", (5, "face_frontal")), result.error
