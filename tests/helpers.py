"""Helpers shared by tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sample_data_dir() -> Path | None:
    """The 400 + 400 real photos (../shared/data/concrete-sample or $CRACKOPS_SAMPLE_DATA), or None."""
    env = os.environ.get("CRACKOPS_SAMPLE_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "concrete-sample")
    for c in candidates:
        if (c / "positive").is_dir() and (c / "negative").is_dir():
            return c.resolve()
    return None
