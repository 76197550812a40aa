"""The four PATCH flavours of the API server, as pure functions.

- JSON merge patch (RFC 7386): dicts merge, `null` deletes, lists replace.
- JSON patch (RFC 6902): add/remove/replace/move/copy/test; a failed `test`
  is a PatchError that the server answers with 422 (kopf relies on it).
- Strategic merge patch: a merge patch whose lists merge by key for the few
  lists built-in kinds declare so (containers/env/volumes by `name`,
  conditions by `type`, ownerReferences by `uid`, ...), finalizers as a set,
  with the `$patch: delete|replace` and `$deleteFromPrimitiveList/...`
  directives; `$setElementOrder/...` and `$retainKeys` are dropped. The real
  server reads the patch strategy from the Go types; this table covers what
  kubectl apply/patch send for the kinds Tuneforge uses.
- Server-side apply (`application/apply-patch+yaml`) is handled by the
  caller as a merge patch (or a create when the object is missing).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """The patch could not be applied; `str()` says where and why."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386. Returns a new value; `target` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- JSON patch --------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_add):
        raise PatchError(f"array index {index} out of bounds in {path}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"doc is missing path: {path}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, for_add=False)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return current


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_add=False)]
    raise PatchError(f"doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchError(f"doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, for_add=False)]
    else:
        raise PatchError(f"doc is missing path: {path}")
    return doc


def _replace(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    _get(doc, path)  # the target must exist
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent[_index(parent, tokens[-1], path, for_add=False)] = value
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902. Returns a new value; raises PatchError on the first failing operation."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        match kind:
            case "add":
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            case "remove":
                doc = _remove(doc, path)
            case "replace":
                doc = _replace(doc, path, copy.deepcopy(op.get("value")))
            case "move":
                value = _get(doc, op["from"])
                doc = _add(_remove(doc, op["from"]), path, value)
            case "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
            case "test":
                try:
                    actual = _get(doc, path)
                except PatchError:
                    actual = None
                if actual != op.get("value"):
                    raise PatchError(f"testing value {path} failed: test failed")
            case _:
                raise PatchError(f"Unexpected kind: {kind}")
    return doc


# --- strategic merge patch --------------------------------------------------

# Lists of built-in kinds that merge element-wise, by this key (k8s.io/api `patchMergeKey`).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
}
# Lists of scalars that merge as sets (`patchStrategy: merge` on a []string).
SET_LISTS = {"finalizers"}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        return "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field) or None


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    if field in SET_LISTS:
        return target + [v for v in patch if v not in target]
    key = _merge_key(field, target + patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [strip_directives(i) for i in patch]
    result = [copy.deepcopy(i) for i in target]
    for item in patch:
        directive = item.get("$patch")
        found = next(
            (n for n, t in enumerate(result) if isinstance(t, dict) and t.get(key) == item.get(key)), None
        )
        if directive == "delete":
            if found is not None:
                del result[found]
        elif directive == "replace" or found is None:
            cleaned = strip_directives({k: v for k, v in item.items() if k != "$patch"})
            if found is None:
                result.append(cleaned)
            else:
                result[found] = cleaned
        else:
            result[found] = strategic_merge_patch(result[found], item)
    return result


def strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch for the lists in MERGE_KEYS/SET_LISTS; a merge patch elsewhere."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue  # $setElementOrder/..., $retainKeys, $patch=merge: ordering hints only
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = [
                strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch"))
            ]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result
