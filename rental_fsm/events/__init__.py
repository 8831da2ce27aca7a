"""Inbound OneAPI events: decoding, and (with the worker) their consumption."""

from __future__ import annotations

from .codec import EventKind, IgnoredEvent, VehicleEvent, decode

__all__ = ["EventKind", "IgnoredEvent", "VehicleEvent", "decode"]
