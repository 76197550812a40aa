"""Transition rules that freeze a spec after creation.

The rules sit on the spec node, one per field, so that adding or removing an
optional field is caught too (a rule on the field itself would not run when
the old object lacks it). They mention ``oldSelf``, so only the API server
evaluates them; pydantic skips them (see ``tuneforge.api.cel``).
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel

from tuneforge.api.cel import CelRule


def _wire_name(model: type[BaseModel], name: str) -> str:
    alias = model.model_fields[name].alias
    return alias if alias else name


def _always_present(model: type[BaseModel], name: str) -> bool:
    # Required or defaulted fields exist on every stored object (the API
    # server applies defaults), so no has() dance is needed.
    info = model.model_fields[name]
    return info.is_required() or info.default_factory is not None or info.default is not None


def immutable_field_rules(
    model: type[BaseModel],
    *,
    kind: str,
    prefix: str = "",
    exempt: Collection[str] = (),
    mutable_hint: str = "",
) -> tuple[CelRule, ...]:
    """One ``self == oldSelf``-style rule per field of ``model`` (wire names).

    ``prefix`` is the wire path from the spec node to ``model`` (e.g.
    ``runPolicy.``); ``exempt`` lists wire names that may change.
    """
    rules = []
    for name in model.model_fields:
        wire = _wire_name(model, name)
        if wire in exempt:
            continue
        path = f"{prefix}{wire}"
        if _always_present(model, name):
            rule = f"self.{path} == oldSelf.{path}"
        else:
            rule = (
                f"has(self.{path}) == has(oldSelf.{path}) && "
                f"(!has(self.{path}) || self.{path} == oldSelf.{path})"
            )
        message = f"spec.{path} is immutable: create a new {kind} to change it"
        rules.append(CelRule(rule=rule, message=message + mutable_hint, field_path=f".{path}"))
    return tuple(rules)
