"""Decide what to do with a FineTuneJob: refuse it, or build its children."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tuneforge.api import conditions as C
from tuneforge.api.errors import describe
from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.capabilities import unsupported
from tuneforge.operator.builders import build_children
from tuneforge.operator.config import OperatorConfig


@dataclass(frozen=True)
class Refusal:
    """Why nothing will run: a terminal reason and a message naming the fields."""

    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    ftj: FineTuneJob
    manifests: list[dict[str, Any]]


RECREATE = "Fix the manifest, then delete and re-create the FineTuneJob."


def parse(body: dict[str, Any]) -> FineTuneJob | Refusal:
    """The resource as a validated model, or why it is refused."""
    manifest: dict[str, Any] = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    try:
        ftj = FineTuneJob.from_manifest(manifest)
    except ValidationError as err:
        return Refusal(C.INVALID_SPEC, "; ".join(describe(err)) + ". " + RECREATE)
    problems = unsupported(ftj.spec)
    if problems:
        return Refusal(C.NOT_SUPPORTED, "; ".join(problems) + ". " + RECREATE)
    return ftj


def plan(body: dict[str, Any], config: OperatorConfig) -> Plan | Refusal:
    parsed = parse(body)
    if isinstance(parsed, Refusal):
        return parsed
    return Plan(parsed, build_children(parsed, config))
