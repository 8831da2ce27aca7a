"""Diagrams are generated from the table, labelled, and checked for staleness."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from rental_fsm import diagrams
from rental_fsm.cli import main
from rental_fsm.machine import TRANSITIONS, Row
from rental_fsm.model import RentalState

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "diagrams"
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not __import__("services").in_ci(),
    reason="Graphviz 'dot' is not installed",
)
EXTRA_ROW = Row("teleport", (RentalState.IDLE,), RentalState.RUNNING)


def test_committed_text_diagrams_are_what_the_table_generates() -> None:
    assert (COMMITTED / "rental.mmd").read_text() == diagrams.to_mermaid()
    assert (COMMITTED / "rental.dot").read_text() == diagrams.to_dot()


@needs_dot
def test_committed_diagrams_pass_the_check() -> None:
    assert diagrams.check(COMMITTED) == []


@pytest.mark.parametrize("render", [diagrams.to_mermaid, diagrams.to_dot])
def test_every_state_and_every_edge_is_drawn(render) -> None:  # type: ignore[no-untyped-def]
    text = render()
    for state in RentalState:
        assert state.value in text
    edge_count = sum(len(row.source) for row in TRANSITIONS)
    assert len(diagrams.edges()) == edge_count
    for edge in diagrams.edges():
        assert edge.trigger in text


def test_timer_edges_carry_their_durations_and_guards_are_labelled() -> None:
    mermaid = diagrams.to_mermaid()
    assert "STARTING --> IDLE : after 45 s (start_timeout)" in mermaid
    assert "RUNNING --> ENDING : after 60 s (auto_cancel)" in mermaid
    assert "ENDING --> RUNNING : after 45 s (end_timeout)" in mermaid
    assert "[ignition_off, end_criteria_met]" in mermaid
    dot = diagrams.to_dot()
    assert 'STARTING -> IDLE [label="after 45 s (start_timeout)' in dot
    assert "style=dashed" in dot


def test_adding_a_transition_without_regenerating_is_detected(tmp_path: Path) -> None:
    _write_text_only(tmp_path)
    changed = TRANSITIONS + (EXTRA_ROW,)
    problems = diagrams.check(tmp_path, changed)
    assert any("rental.mmd is stale" in p for p in problems)
    assert any("rental.dot is stale" in p for p in problems)


@needs_dot
def test_an_svg_rendered_from_an_older_table_is_detected(tmp_path: Path) -> None:
    diagrams.write_all(tmp_path)
    changed = TRANSITIONS + (EXTRA_ROW,)
    (tmp_path / "rental.mmd").write_text(diagrams.to_mermaid(changed))
    (tmp_path / "rental.dot").write_text(diagrams.to_dot(changed))
    assert diagrams.check(tmp_path, changed) == [
        f"{tmp_path / 'rental.svg'} is stale (rendered from another table)",
        "run `make diagrams` and commit the result",
    ]


@needs_dot
def test_svg_shows_every_state_and_the_timer_labels() -> None:
    svg = diagrams.to_svg()
    for state in RentalState:
        assert f">{state.value}<" in svg
    assert "after 45 s (start_timeout)" in svg
    assert "after 60 s (auto_cancel)" in svg


def test_a_changed_guard_changes_the_table_hash() -> None:
    rows = tuple(replace(r, guards=()) if r.trigger == "end" else r for r in TRANSITIONS)
    assert diagrams.table_hash(rows) != diagrams.table_hash()


def test_cli_check_fails_on_stale_diagrams(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _write_text_only(tmp_path)
    (tmp_path / "rental.mmd").write_text("stateDiagram-v2\n")
    assert main(["diagram", "--check", str(tmp_path)]) == 1
    assert "rental.mmd is stale" in capsys.readouterr().err


def test_cli_writes_each_format(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "x.mmd"
    assert main(["diagram", "--format", "mermaid", "-o", str(out)]) == 0
    assert out.read_text() == diagrams.to_mermaid()
    assert main(["diagram", "--format", "dot"]) == 0
    assert capsys.readouterr().out == diagrams.to_dot()


def test_missing_graphviz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    assert main(["diagram", "--format", "svg"]) == 4
    assert "install graphviz" in capsys.readouterr().err


def _write_text_only(directory: Path) -> None:
    (directory / "rental.mmd").write_text(diagrams.to_mermaid())
    (directory / "rental.dot").write_text(diagrams.to_dot())
