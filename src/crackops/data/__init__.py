"""Datasets: synthetic data (``synth``), checks (``check``) and the duplicate-aware split (``split``).

Nothing here imports TensorFlow; submodules load on first use so ``import crackops.data`` is cheap.
"""

from __future__ import annotations

__all__ = ["synthesize", "make_split", "Split", "LABELS", "check_dataset", "CheckReport"]

_LAZY = {
    "synthesize": "crackops.data.synth",
    "make_split": "crackops.data.split",
    "Split": "crackops.data.split",
    "LABELS": "crackops.data.split",
    "check_dataset": "crackops.data.check",
    "CheckReport": "crackops.data.check",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crackops.data' has no attribute {name!r}")
