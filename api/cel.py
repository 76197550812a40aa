"""CEL validation rules, written once and enforced in two places.

A rule is attached to a field type (``Annotated[str, CelRule(...)]``) or to a
model (``cel_rules`` on an :class:`~tuneforge.api.base.ApiModel`). The CRD
generator copies it into the schema as ``x-kubernetes-validations`` so the
Kubernetes API server rejects bad objects at ``kubectl apply``; pydantic
evaluates the very same expression with cel-python, so ``tuneforge run`` and
the operator reject exactly what a cluster would. Keep rules to standard CEL
(``matches``, ``has``, ``size``, ``all``/``exists``, comparisons): cel-python
lacks the Kubernetes extension libraries. Rules that mention ``oldSelf``
(immutability) only make sense on update, so only the API server checks them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry."""

    rule: str
    message: str
    # Relative JSONPath of the field to blame, as the API server reports it.
    field_path: str | None = None

    @property
    def is_transition(self) -> bool:
        return "oldSelf" in self.rule

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out

    def holds(self, wire_value: Any) -> bool:
        """Evaluates the rule against a value in its JSON (wire) form."""
        try:
            result = _program(self.rule).evaluate({"self": json_to_cel(wire_value)})
        except CELEvalError:
            return False
        if isinstance(result, CELEvalError):
            return False
        return bool(result)

    # pydantic hooks: used when the rule annotates a field type.
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        if self.is_transition:
            return schema
        return core_schema.no_info_after_validator_function(self._check, schema)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(self.to_schema())
        return json_schema

    def _check(self, value: Any) -> Any:
        if not self.holds(to_wire(value)):
            raise PydanticCustomError("cel_rule", self.message)
        return value


def to_wire(value: Any) -> Any:
    """The JSON form the API server would hold for a Python value."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


@functools.cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))
