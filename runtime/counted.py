"""Counted warnings: what a reader tolerates is reported, never skipped silently.

The readers of label files, input folders and ais_bench results accept what the
ModelZoo tools accept, but each tolerance becomes one warning line that is both
logged and returned, so a CLI run shows it and a report can keep it.
"""

from __future__ import annotations

import logging


def counted_warnings(log: logging.Logger, *messages: str | None) -> list[str]:
    """The messages that apply (``None`` or ``""``: nothing happened), each logged once as a warning."""
    found = [m for m in messages if m]
    for m in found:
        log.warning(m)
    return found
