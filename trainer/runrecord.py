"""The run record under ``<output>/run/``: config.json, train.log, metrics.jsonl, status.json (last)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"
# Keys whose values never leave the process, whatever they hold.
SECRET_KEY = re.compile(r"(?i)(token|secret|password|passwd|api[-_]?key|credential)")


def redact(value: Any) -> Any:
    """``value`` with everything under a secret-looking key replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def output_uris(output: str) -> dict[str, str]:
    """Where the adapter (or full model) and the run record of ``output`` go, by their Artifacts names."""
    return {
        "adapter": join_uri(output, "adapter"),
        "model": join_uri(output, "model"),
        "runRecord": join_uri(output, "run"),
    }


def config_json(manifest: dict[str, Any]) -> str:
    """The FineTuneJob as run (no status), secrets redacted."""
    kept = {k: v for k, v in manifest.items() if k != "status"}
    return json.dumps(redact(kept), indent=2, sort_keys=True) + "\n"


def metrics_jsonl(history: list[dict[str, Any]]) -> str:
    return "".join(
        json.dumps(entry, sort_keys=True, allow_nan=False, default=str) + "\n" for entry in _finite(history)
    )


def _finite(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # JSON has no NaN/Infinity: a diverged loss is written as null.
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) else v

    return [{k: clean(v) for k, v in entry.items()} for entry in history]


def write_run_record(
    run_uri: str,
    *,
    manifest: dict[str, Any] | None,
    log_file: Path | None,
    history: list[dict[str, Any]] | None,
    status: dict[str, Any],
) -> None:
    """Write the record; status.json goes last, so its presence means the record is complete."""
    from tuneforge.storage import write_text

    if manifest is not None:
        write_text(join_uri(run_uri, "config.json"), config_json(manifest))
    if log_file is not None and log_file.exists():
        write_text(join_uri(run_uri, "train.log"), log_file.read_text(encoding="utf-8", errors="replace"))
    if history is not None:
        write_text(join_uri(run_uri, "metrics.jsonl"), metrics_jsonl(history))
    write_text(join_uri(run_uri, "status.json"), json.dumps(status, indent=2, sort_keys=True) + "\n")
