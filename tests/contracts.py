"""The published API contracts, served from the project's own fixtures (`tests/contract_facts`)."""

from __future__ import annotations

import copy
from typing import Any

from tests.contract_facts import DOCUMENTS


def contract_document(name: str) -> dict[str, Any]:
    """The one-operation OpenAPI 3.1 document of a published contract (a fresh copy)."""
    if name not in DOCUMENTS:
        raise KeyError(f"no published contract {name!r}; known: {sorted(DOCUMENTS)}")
    return copy.deepcopy(DOCUMENTS[name]())
