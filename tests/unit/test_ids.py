"""Event ids: fresh ones are time-ordered UUIDv7, derived ones are stable UUIDv5."""

from __future__ import annotations

import uuid

from tradebus_common.ids import client_order_id, derive_id, new_id


def test_derive_id_is_stable() -> None:
    assert derive_id("parent", "intent", 0) == derive_id("parent", "intent", 0)


def test_derive_id_is_a_uuid5() -> None:
    assert uuid.UUID(derive_id("parent", "intent", 0)).version == 5


def test_derive_id_differs_per_parent_and_per_part() -> None:
    ids = {
        derive_id("parent", "intent", 0),
        derive_id("parent", "intent", 1),
        derive_id("parent", "fill", 0),
        derive_id("other", "intent", 0),
        derive_id("parent", "intent"),
        derive_id("parent"),
    }
    assert len(ids) == 6


def test_client_order_id_is_deterministic() -> None:
    assert client_order_id("intent-1", 0) == client_order_id("intent-1", 0)
    assert client_order_id("intent-1") == client_order_id("intent-1", 0)


def test_client_order_id_is_short_and_alphanumeric() -> None:
    for intent_id in ["intent-1", "", "x" * 1000, "ü/*> .:"]:
        for slice_no in range(3):
            cid = client_order_id(intent_id, slice_no)
            assert len(cid) <= 32
            assert cid.isascii() and cid.isalnum(), cid


def test_client_order_id_differs_per_slice_and_intent() -> None:
    cids = {client_order_id("intent-1", n) for n in range(100)}
    assert len(cids) == 100
    assert client_order_id("intent-1", 0) != client_order_id("intent-2", 0)


def test_new_ids_are_unique_uuid7() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_new_ids_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
