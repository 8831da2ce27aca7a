"""``python -m rental_fsm`` runs the ``rental-fsm`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
