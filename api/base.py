"""Shared pieces of both resources: the model base, URIs, secrets, conditions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from tuneforge.api.cel import CelRule, to_wire

GROUP: Final = "tuneforge.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "tuneforge.io/v1alpha1"


class ApiModel(BaseModel):
    """Base of every wire model: camelCase on the wire, unknown fields refused.

    Subclasses list model-level CEL rules in ``cel_rules``; they land in the
    CRD as ``x-kubernetes-validations`` and are evaluated here too.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=False,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Any:
        rules = [r for r in type(self).cel_rules if not r.is_transition]
        if rules:
            wire = to_wire(self)
            for rule in rules:
                if not rule.holds(wire):
                    raise PydanticCustomError("cel_rule", rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        if cls.cel_rules:
            target["x-kubernetes-validations"] = [r.to_schema() for r in cls.cel_rules]
        return json_schema

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- names and URIs --------------------------------------------------------

# A DNS-1123 label: what Kubernetes accepts for Secret, ConfigMap, PVC names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]

_BUCKET = r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]"
_URI_SYNTAX = {
    "s3": rf"s3://{_BUCKET}(/[^\\s]*)?",
    "gs": rf"gs://{_BUCKET}(/[^\\s]*)?",
    "hf": r"hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+",
    "pvc": r"pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\\s]*)?",
    "https": r"https://[^\\s/]+(/[^\\s]*)?",
    "file": r"file://[^\\s]+",
}


def uri_type(*schemes: str, what: str) -> Any:
    """A URI string limited to ``schemes``, with syntax and traversal rules."""
    pattern = "^(" + "|".join(_URI_SYNTAX[s] for s in schemes) + ")$"
    listed = ", ".join(f"{s}://" for s in schemes)
    return Annotated[
        str,
        Field(min_length=1, max_length=2048),
        CelRule(
            rule=f"self.matches('{pattern}')",
            message=f"{what} must be a URI starting with one of {listed} "
            "(buckets are 3-63 lowercase letters, digits, '.', '-'; no spaces)",
        ),
        CelRule(
            rule=r"!self.matches('(^|/)\\.\\.(/|$)')",
            message=f"{what} must not contain '..' path segments",
        ),
    ]


if TYPE_CHECKING:
    ModelUri = str
    DatasetUri = str
    OutputUri = str
    AdapterUri = str
else:
    ModelUri = uri_type("hf", "gs", "s3", "pvc", "file", what="the model source")
    DatasetUri = uri_type("hf", "gs", "s3", "https", "pvc", "file", what="the dataset source")
    OutputUri = uri_type("gs", "s3", "file", what="the output location")
    AdapterUri = uri_type("gs", "s3", "file", what="the adapter location")


class SecretKeyRef(ApiModel):
    """A key of a Secret in the resource's own namespace."""

    name: DnsLabel
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = "token"
    """Key inside the Secret that holds the value."""


# --- conditions ------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: Annotated[str, Field(max_length=316)]
    """Type of condition in CamelCase, e.g. Succeeded."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, Field(max_length=1024)]
    """One CamelCase word that says why: the stage (Queued, Training, ...) or the failure."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """A human-readable explanation: what happened and what to do about it."""
    last_transition_time: Annotated[str, Field(max_length=64)] | None = None
    """When the condition last changed status (RFC 3339)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The .metadata.generation the condition was set for."""


# The API server keeps one condition per type (a list-map keyed by type), so
# server-side apply and strategic merges address conditions by type.
Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class ObjectMeta(BaseModel):
    """The parts of metadata Tuneforge reads; everything else passes through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
