"""Mount paths -> local folders, by rewriting path prefixes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    path: str
    """Where the container sees it, e.g. /workspace."""
    local: Path
    """Where it is on this machine."""


def rewrite(value: str, mounts: list[Mount]) -> str:
    """A mount path, a path under one, or a file:// URI of either, pointed at the local folder."""
    if value.startswith("file:///"):
        local = rewrite(value.removeprefix("file://"), mounts)
        return "file://" + local if local != value.removeprefix("file://") else value
    for mount in sorted(mounts, key=lambda m: len(m.path), reverse=True):
        base = mount.path.rstrip("/") or "/"
        if value == base:
            return str(mount.local)
        if value.startswith(base + "/"):
            return str(mount.local) + value[len(base) :]
    return value
