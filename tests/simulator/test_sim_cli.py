"""``rental-fsm simulator`` serves until SIGTERM and prints what a client needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from rental_fsm.config import Secret
from rental_fsm.oneapi import OneAPIClient

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_url_and_credentials_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rental_fsm", "simulator", "--vehicles", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        url = lines[0].rsplit(" ", 1)[1]
        client_id = lines[1].split(": ", 1)[1]
        secret = lines[2].split(": ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        assert all(line.startswith("vehicle ") for line in lines[3:])
        client = OneAPIClient(url, client_id, Secret(secret), read_timeout=5)
        assert len(list(client.iter_vehicles())) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("the simulator still answers after SIGTERM")
