"""Small FineTuneJob manifests for tests."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "demo", "namespace": "team-a", "uid": "0000-1111", "generation": 1},
    "spec": {
        "model": {"source": "s3://models/tiny"},
        "dataset": {"source": "s3://data/train.jsonl"},
        "output": {"uri": "s3://out/runs/demo"},
    },
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``extra`` merged in (dicts recursively)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
