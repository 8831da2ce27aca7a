"""``python -m rental_fsm.demo``: the same as ``rental-fsm demo``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
