"""Builders of FineTuneJob manifests for the operator's unit tests."""

from __future__ import annotations

from typing import Any

import pytest
from support.manifests import BASE, merge

from tuneforge.api.finetunejob import FineTuneJob


@pytest.fixture
def make_ftj():
    def make(**spec: Any) -> FineTuneJob:
        return FineTuneJob.model_validate(merge(BASE, {"spec": spec}))

    return make
