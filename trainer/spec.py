"""Read the FineTuneJob the operator wrote, and refuse what this trainer cannot do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuneforge.api import FineTuneJob
from tuneforge.api.errors import describe
from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.capabilities import unsupported_training
from tuneforge.trainer.errors import InvalidSpec, NotSupportedYet


def load_spec(path: Path) -> FineTuneJob:
    """The FineTuneJob in the YAML file at ``path``, validated with the API models."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidSpec(f"cannot read the spec file {path}: {err.strerror or err}") from err
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "spec") -> FineTuneJob:
    try:
        manifest: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidSpec(f"{source}: not valid YAML: {err}") from err
    if not isinstance(manifest, dict):
        raise InvalidSpec(f"{source}: expected a FineTuneJob object, got {type(manifest).__name__}")
    try:
        return FineTuneJob.from_manifest(manifest)
    except ValidationError as err:
        problems = "; ".join(describe(err))
        raise InvalidSpec(f"{source}: not a valid FineTuneJob: {problems}") from err


def unsupported_fields(spec: FineTuneJobSpec) -> list[str]:
    """What the spec asks for that this version does not implement, one line per field."""
    return unsupported_training(spec)


def check_supported(spec: FineTuneJobSpec) -> None:
    """Raise NotSupportedYet naming every unsupported field."""
    fields = unsupported_fields(spec)
    if fields:
        raise NotSupportedYet("; ".join(fields))
