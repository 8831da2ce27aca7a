"""The rental-fsm command, called in-process and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

from rental_fsm import __version__
from rental_fsm.cli import EXIT_CONFIG, main


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "rental_fsm", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"rental-fsm {__version__}"


def test_usage_errors_exit_2(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 2
    assert main(["diagram", "--format", "png"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_config_prints_effective_settings_without_secrets(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RENTAL_FSM_ONEAPI_CLIENT_SECRET", "very-secret")
    monkeypatch.setenv("RENTAL_FSM_AUTO_CANCEL_S", "30")
    assert main(["config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["oneapi_client_secret"] == "***" and shown["auto_cancel"] == 30.0


def test_bad_configuration_exits_3(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RENTAL_FSM_START_TIMEOUT_S", "never")
    assert main(["config"]) == EXIT_CONFIG
    assert "RENTAL_FSM_START_TIMEOUT_S" in capsys.readouterr().err
