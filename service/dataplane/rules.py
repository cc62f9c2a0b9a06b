"""Request rules every protocol shares, stated once: the adapters' schemas and the fast path
take their bounds and defaults from here."""

from __future__ import annotations

__all__ = ["DEFAULT_INTERVAL", "MAX_SEED"]

# Seeds are JSON integers that every client can send and NumPy can hold: a signed 64-bit int.
MAX_SEED = 2**63 - 1
# Central mass of the predictive interval (`lower`/`upper`) when a request names none.
DEFAULT_INTERVAL = 0.95
