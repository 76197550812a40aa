"""Experiment tracking with Weights & Biases, as spec.tracking.wandb says.

The trainer opens the run itself (project, entity, name, tags, the spec as
config with secrets redacted) around training; transformers' WandbCallback
(``report_to=["wandb"]``) finds it open and logs losses, evaluations and the
training arguments into it. The run's page goes to status.trackingURL.

The API key comes only from the environment (``WANDB_API_KEY``, which the
operator fills from spec.tracking.wandb.apiKeySecretRef) and is never logged,
put in the run's config or written anywhere by us. ``WANDB_MODE=offline``
keeps the run in ``<workdir>/wandb/offline-run-*`` (for ``wandb sync``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.api.finetunejob import FineTuneJobSpec, Wandb
from tuneforge.reporting import Reporter
from tuneforge.trainer.errors import TrainerError
from tuneforge.trainer.runrecord import redact

log = logging.getLogger(__name__)

KEY_VARIABLE = "WANDB_API_KEY"
OFFLINE_MODES = ("offline", "disabled", "dryrun")
# wandb run ids: letters, digits, '-' and '_' (64 at most).
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class TrackingUnavailable(TrainerError):
    """Tracking was asked for but cannot start: no wandb package, or no API key."""

    reason = "TrackingUnavailable"
    exit_code = exitcodes.INVALID_INPUT


class TrackingFailed(TrainerError):
    """The tracking service could not be reached; a retry may succeed."""

    reason = "TrackingFailed"
    exit_code = exitcodes.FAILED


def wandb_spec(spec: FineTuneJobSpec) -> Wandb | None:
    return spec.tracking.wandb if spec.tracking is not None else None


def report_to(spec: FineTuneJobSpec) -> str | list[str]:
    """transformers' ``report_to`` for this spec."""
    return ["wandb"] if wandb_spec(spec) is not None else "none"


def run_id(job: FineTuneJob) -> str | None:
    """A run id derived from the FineTuneJob's uid, so a restarted pod continues the same run."""
    uid = job.metadata.uid
    return _RUN_ID_UNSAFE.sub("-", uid)[:64] if uid else None


def init_kwargs(job: FineTuneJob, settings: Wandb, workdir: Path) -> dict[str, Any]:
    """Keyword arguments of ``wandb.init`` (no secret among them: the key is read from the environment)."""
    meta = job.metadata
    return {
        "project": settings.project,
        "entity": settings.entity,
        "name": settings.run_name or f"{meta.namespace or 'default'}/{meta.name}",
        "tags": list(settings.tags),
        "config": {"finetunejob": redact(job.wire().get("spec", {}))},
        "job_type": "fine-tune",
        "id": run_id(job),
        "resume": "allow",
        "dir": str(workdir),
    }


def check_can_start(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Refuse clearly when wandb cannot start: not installed, or online without a key."""
    if importlib.util.find_spec("wandb") is None:
        raise TrackingUnavailable(
            "spec.tracking.wandb needs the wandb package, which this trainer image does not have; "
            "use an image built with the trainer extra, or remove spec.tracking"
        )
    if environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES:
        return
    if not environ.get(KEY_VARIABLE):
        raise TrackingUnavailable(
            f"spec.tracking.wandb: {KEY_VARIABLE} is not set; in a cluster the operator sets it from "
            "spec.tracking.wandb.apiKeySecretRef (check that Secret and key exist); locally, set it "
            "or WANDB_MODE=offline"
        )


def is_main_process(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Only the first process of a multi-process run opens the tracking run."""
    return environ.get("RANK", "0") in ("", "0")


def run_url(run: Any) -> str | None:
    """The run's page as wandb builds it (known offline too when the entity is set)."""
    url = getattr(run.settings, "run_url", "") or ""
    return url or None


def start(job: FineTuneJob, settings: Wandb, workdir: Path) -> Any:
    """Open the wandb run; TrackingFailed when the service cannot be reached."""
    import wandb

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(
            **init_kwargs(job, settings, workdir),
            # Our own log lines say where the run is; the pod log needs no banner.
            settings=wandb.Settings(silent=True, console="off"),
        )
    except (wandb.Error, OSError, TimeoutError) as err:
        raise TrackingFailed(f"cannot start the wandb run in project {settings.project!r}: {err}") from err


@contextlib.contextmanager
def tracking_session(job: FineTuneJob, workdir: Path, reporter: Reporter | None) -> Iterator[None]:
    """A wandb run open while the body trains (nothing at all without spec.tracking.wandb)."""
    settings = wandb_spec(job.spec)
    if settings is None or not is_main_process():
        yield
        return
    check_can_start()
    run = start(job, settings, workdir)
    url = run_url(run)
    if url:
        log.info("wandb run %s: %s", run.id, url)
        if reporter is not None:
            reporter.tracking_url(url)
    else:
        log.info("wandb run %s (offline, no entity: its page is known once it is synced)", run.id)
    ok = False
    try:
        yield
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
