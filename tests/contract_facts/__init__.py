"""The published API contracts this project is wire-compatible with, kept as test fixtures.

Each contract is a one-operation, OpenAPI-3.1-shaped dict (paths plus components/schemas),
built from the facts in `den` and `kubiya`. They are an independent reference: nothing here
imports the product."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.contract_facts import den, kubiya

DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "den_heartbeat": den.heartbeat_document,
    "kubiya_heartbeat": kubiya.heartbeat_document,
    "kubiya_worker_heartbeat": kubiya.worker_heartbeat_document,
    "kubiya_worker_disconnect": kubiya.disconnect_document,
    "den_list_workers": den.list_workers_document,
    "den_get_worker": den.get_worker_document,
}

__all__ = ["DOCUMENTS", "den", "kubiya"]
