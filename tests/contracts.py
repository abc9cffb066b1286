"""The published API contracts, served from the project's own fixtures (`tests/contract_facts`)."""

from __future__ import annotations

import copy
from typing import Any

from tests.contract_facts import DOCUMENTS

# Some tests name a contract by its catalogue number rather than by name.
_CATALOGUE = {
    "000": "den_heartbeat",
    "002": "kubiya_heartbeat",
    "003": "den_list_workers",
    "004": "den_get_worker",
}


def contract_name(key: str) -> str:
    """The contract's name for `key`, a name of `DOCUMENTS` or a catalogue number ("000_")."""
    name = _CATALOGUE.get(key.rstrip("_"), key)
    if name not in DOCUMENTS:
        raise KeyError(f"no published contract {key!r}; known: {sorted(DOCUMENTS)}")
    return name


def contract_document(key: str) -> dict[str, Any]:
    """The one-operation OpenAPI 3.1 document of a published contract (a fresh copy)."""
    return copy.deepcopy(DOCUMENTS[contract_name(key)]())
