"""Send a worker's heartbeats to the heartbeat control plane's ingest, politely.

`Heartbeater` is the entry point; the state classes say what a beat reports; `timing` holds
the pure schedule functions, importable on their own for simulations and tests.
"""

from .errors import HeartbeatError, HeartbeatRejected
from .heartbeater import DEFAULT_TIMEOUT, Heartbeater
from .outcomes import Outcome, classify
from .payloads import DenState, KubiyaState, format_timestamp
from .version import __version__

__all__ = [
    "DEFAULT_TIMEOUT",
    "DenState",
    "HeartbeatError",
    "HeartbeatRejected",
    "Heartbeater",
    "KubiyaState",
    "Outcome",
    "__version__",
    "classify",
    "format_timestamp",
]
