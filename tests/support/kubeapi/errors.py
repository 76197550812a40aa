"""API errors as the real API server reports them: `kind: Status` bodies.

kubectl and the client libraries read `reason`, `code`, `message` and
`details` (with `causes[]` for 422), so each error builds exactly the shape
and wording of kube-apiserver (k8s.io/apimachinery/pkg/api/errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of `details.causes`: what is wrong with which field."""

    reason: str
    message: str
    field: str = ""

    def body(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """An error the server answers with; `status_body()` is what goes on the wire."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def qualified(plural: str, group: str) -> str:
    """`finetunejobs.tuneforge.io`, or just `pods` for the core group."""
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, kind: str, causes: list[Cause] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": kind} if name else {"kind": kind}
    if group:
        out["group"] = group
    if causes:
        out["causes"] = [c.body() for c in causes]
    return out


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(plural, group)} "{name}" not found', _details(name, group, plural)
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(name, group, plural))


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 as kube-apiserver words it: `Kind.group "name" is invalid: [a, b]` (one error: no brackets)."""
    messages = [c.message if not c.field else f"{c.field}: {c.message}" for c in causes]
    joined = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', _details(name, group, kind, causes)
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
    )


def not_acceptable(accept: str) -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        f"the server was unable to respond with a content type that the client supports: {accept}",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    message = f'{qualified(plural, group)} "{name}" is forbidden: {why}'
    return ApiError(403, "Forbidden", message, _details(name, group, plural))


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def page_not_found(path: str) -> ApiError:
    # The real server answers unknown URLs with a bare 404 Status ("the server could not find ...").
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})", {})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {})
