"""README.rst's examples run as written."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"


def test_readme_examples_run() -> None:
    result = doctest.testfile(str(README), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0


def test_readme_gives_the_two_setup_commands_on_its_first_screen() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def _python_blocks(text: str) -> list[str]:
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ".. code-block:: python":
            body = []
            for nxt in lines[i + 2:]:
                if nxt and not nxt.startswith("    "):
                    break
                body.append(nxt[4:])
            blocks.append("\n".join(body))
    return blocks


@pytest.mark.redis
def test_readme_python_blocks_run(redis_client, redis_namespace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import redis

    # Point the example's default client at this test's namespace on the real Redis.
    monkeypatch.setattr(redis, "Redis", lambda *a, **k: redis_client)
    blocks = _python_blocks(README.read_text())
    assert blocks, "README has no python block to check"
    for block in blocks:
        code = block.replace('Keys("fleet-a")', f'Keys("{redis_namespace}")')
        namespace: dict[str, object] = {}
        exec(compile(code, "README.rst", "exec"), namespace)  # noqa: S102 - our own docs
        assert type(namespace["store"]).__name__ == "RedisRentalStore"


def test_readme_performance_section_is_generated_from_the_latest_result() -> None:
    import sys

    sys.path.insert(0, str(README.parent))
    from benchmarks import report

    text = README.read_text()
    assert report.with_section(text, report.section(report.latest())) == text


@pytest.mark.parametrize("path", [README, *sorted((README.parent / "docs").glob("*.rst"))],
                         ids=lambda p: p.name)
def test_the_reStructuredText_renders_without_errors(path: Path) -> None:
    """Found when two tables of the README had text in a column margin: docutils (and so
    any site rendering the README) reported them as malformed and showed them as text."""
    import io

    import docutils.core
    from docutils.writers.null import Writer

    errors = io.StringIO()
    docutils.core.publish_string(path.read_text(), source_path=str(path), writer=Writer(),
                                 settings_overrides={"report_level": 2, "halt_level": 5,
                                                     "warning_stream": errors})
    assert errors.getvalue() == ""
