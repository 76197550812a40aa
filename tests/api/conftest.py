"""Fixtures for the API tests: the committed CRDs, the way a cluster gets them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tuneforge.api import FineTuneJob, ModelExport

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def committed_crds() -> dict[str, dict[str, Any]]:
    """Kind -> CRD manifest, read from crds/*.yaml."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[crd["spec"]["names"]["kind"]] = crd
    kinds = {FineTuneJob.__name__, ModelExport.__name__}
    assert set(out) == kinds, f"crds/ holds {sorted(out)}; run `make crds`"
    return out
