"""Event ids. Fresh ids are UUIDv7 (time-ordered); derived ids are UUIDv5, so a retry
derives the same id and JetStream / the consumers deduplicate it."""

from __future__ import annotations

import uuid

import uuid6

_NAMESPACE = uuid.UUID("6f1c2a8e-5b0d-4c3e-9a47-7d2f0e3b1c55")


def new_id() -> str:
    return str(uuid6.uuid7())


def derive_id(parent_id: str, *parts: object) -> str:
    """A stable id for the event that `parent_id` causes, named by `parts` (e.g. "intent", 0)."""
    name = ":".join([parent_id, *(str(p) for p in parts)])
    return str(uuid.uuid5(_NAMESPACE, name))


def client_order_id(intent_id: str, slice_no: int = 0) -> str:
    """Short, venue-safe (alphanumeric, 32 chars) and deterministic from intent and slice."""
    return "tb" + uuid.uuid5(_NAMESPACE, f"{intent_id}:cid:{slice_no}").hex[:30]
