"""The public API and the import layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rental_fsm

PACKAGE = Path(rental_fsm.__file__).resolve().parent

#: Each third-party library has one owning module (or package).
OWNERS = {
    "transitions": ("machine.py",),
    "redis": ("store/", "timers/"),
    "kombu": ("events/", "simulator/", "worker/"),
    "requests": ("oneapi/",),
}


def test_all_is_sorted_and_complete() -> None:
    names = rental_fsm.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(rental_fsm, name), name


def test_py_typed_ships() -> None:
    assert (PACKAGE / "py.typed").exists()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_third_party_libraries_are_imported_only_by_their_owning_modules() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        for library, owners in OWNERS.items():
            if library in _imports(path) and not relative.startswith(owners):
                offenders.append(f"{relative} imports {library}")
    assert offenders == []


def test_nothing_uses_pickle() -> None:
    offenders = [p.name for p in PACKAGE.rglob("*.py") if {"pickle", "dill"} & _imports(p)]
    assert offenders == []


def test_importing_the_package_stays_light() -> None:
    code = ("import sys, rental_fsm; "
            "print(sorted(m for m in ('kombu', 'redis', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    """`rental-fsm --help` or `diagram` need neither kombu, redis nor requests."""
    code = ("import sys, rental_fsm.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('kombu', 'redis', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
