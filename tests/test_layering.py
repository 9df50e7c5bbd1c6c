"""The floors hold: pages call services only, store is persistence only, the engines are pure.

import-linter (``lint-imports``, run by ``make test``) holds the contracts between packages of
``analysis``; this test holds what it cannot see (``views/`` is not a package) and the rules that are
not about imports (who calls ``require``, who reads the environment).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TypeGuard

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # ``from analysis import config`` imports the module analysis.config
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _violations(paths: list[Path], allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for path in paths:
        for line, module in _imports(path):
            if module.split(".")[0] in ("analysis", "ui") and not any(
                module == a or module.startswith(a + ".") for a in allowed
            ):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_pages_import_only_services_and_the_ui_frame() -> None:
    pages = sorted((ROOT / "views").glob("*.py"))
    assert len(pages) > 5
    assert _violations(pages, ("analysis.services", "ui")) == []


def test_the_ui_frame_imports_services_sign_in_and_the_session_factory_only() -> None:
    assert (
        _violations(
            sorted((ROOT / "ui").glob("*.py")) + [ROOT / "app.py"],
            ("analysis.services", "analysis.auth", "analysis.store.db", "ui"),
        )
        == []
    )


@pytest.mark.parametrize(
    "floor,allowed",
    [
        ("store", ("analysis.store", "analysis.config", "analysis.errors")),
        ("photos", ("analysis.photos", "analysis.processes", "analysis.errors")),
        ("outcomes", ("analysis.outcomes", "analysis.errors")),
        ("hair", ("analysis.hair",)),
        ("reports", ("analysis.reports", "analysis.outcomes")),
    ],
)
def test_lower_floors_do_not_reach_up(floor: str, allowed: tuple[str, ...]) -> None:
    paths = sorted((ROOT / "analysis" / floor).rglob("*.py"))
    # a floor's own command-line entry point may call the services (it is a door, like a page)
    paths = [p for p in paths if p.name != "cli.py" and "migrations" not in p.parts]
    assert paths
    assert _violations(paths, allowed) == []


def test_production_code_does_not_import_the_demo() -> None:
    paths = [
        p
        for p in sorted((ROOT / "analysis").rglob("*.py"))
        if "demo" not in p.parts and p.name not in ("cli.py",)
    ]
    paths += sorted((ROOT / "views").glob("*.py")) + sorted((ROOT / "ui").glob("*.py"))
    bad = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in paths
        for line, m in _imports(p)
        if m == "analysis.demo" or m.startswith("analysis.demo.")
    ]
    assert bad == []


def test_analysis_never_imports_streamlit() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in sorted((ROOT / "analysis").rglob("*.py"))
        for line, m in _imports(p)
        if m.split(".")[0] == "streamlit"
    ]
    assert bad == []


def test_require_is_called_only_in_services() -> None:
    bad = []
    for path in sorted((ROOT / "analysis").rglob("*.py")):
        if "services" in path.parts or path.name == "access.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and "require" in (
                getattr(node.func, "id", None),
                getattr(node.func, "attr", None),
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bad == []


def _reads_environment(node: ast.AST) -> TypeGuard[ast.expr]:
    """``os.environ.get/[]``/``os.getenv``; writes (``setdefault`` of a library's log level) and
    handing the whole environment to a child process (``dict(os.environ)``) are not reads of a
    setting."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        if f.attr == "getenv":
            return True
        if (
            f.attr in ("get", "pop")
            and isinstance(f.value, ast.Attribute)
            and f.value.attr == "environ"
        ):
            return True
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "environ"
        and isinstance(node.ctx, ast.Load)
    ):
        return True
    return False


def test_the_environment_is_read_in_one_module() -> None:
    paths = (
        sorted((ROOT / "analysis").rglob("*.py"))
        + sorted((ROOT / "ui").glob("*.py"))
        + sorted((ROOT / "views").glob("*.py"))
        + [ROOT / "app.py"]
    )
    bad = [
        f"{p.relative_to(ROOT)}:{n.lineno}"
        for p in paths
        if p.name != "config.py"
        for n in ast.walk(ast.parse(p.read_text()))
        if _reads_environment(n)
    ]
    assert bad == []
