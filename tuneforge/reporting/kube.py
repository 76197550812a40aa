"""The Kubernetes sink: merge-patches a FineTuneJob's (or ModelExport's) status subresource, rate-limited.

At most one patch every ``interval`` seconds: updates in between are
coalesced into one pending merge patch, sent when the interval is up (by a
timer thread) or at once when forced. A failed patch is logged, without the
token, and never raised: the status is a courtesy, the termination message
carries the result.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tuneforge.api import API_VERSION
from tuneforge.api.finetunejob import PLURAL
from tuneforge.reporting.progress import merge_patch, seconds_until_due

log = logging.getLogger(__name__)

DEFAULT_SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_INTERVAL = 5.0
TIMEOUT = httpx.Timeout(5.0, connect=3.0)


def status_url(host: str, port: str | int, namespace: str, name: str, plural: str = PLURAL) -> str:
    """URL of the status subresource of ``namespace/name``: a FineTuneJob unless ``plural`` says otherwise."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"https://{host}:{port}/apis/{API_VERSION}/namespaces/{namespace}/{plural}/{name}/status"


class KubernetesSink:
    """Sends the trainer's status blocks to the API server."""

    def __init__(
        self,
        url: str,
        *,
        token_path: Path,
        ca_path: Path,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.token_path = token_path
        self.interval = interval
        self.patches_sent = 0
        self.patches_failed = 0
        self._clock = clock
        self._pending: dict[str, Any] | None = None
        self._last_sent: float | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()  # guards _pending and _timer
        self._send_lock = threading.Lock()  # one request at a time, in order
        self._closed = False
        self._client = httpx.Client(verify=_ssl_context(ca_path), timeout=TIMEOUT)

    def update(self, patch: dict[str, Any], *, force: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending = merge_patch(self._pending or {}, patch)
            if not force:
                self._schedule()
                return
        self.flush()

    def flush(self) -> None:
        """Send what is pending now, whatever the interval."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._send_pending()

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True
        self._client.close()

    def _schedule(self) -> None:
        """Arm the one timer that sends pending updates when the interval is up (lock held)."""
        if self._timer is None:
            wait = seconds_until_due(self._clock(), self._last_sent, self.interval)
            self._timer = threading.Timer(wait, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if seconds_until_due(self._clock(), self._last_sent, self.interval) > 0:
                # A forced flush went out meanwhile: wait for the next slot.
                if self._pending:
                    self._schedule()
                return
        self._send_pending()

    def _send_pending(self) -> None:
        with self._send_lock:
            with self._lock:
                patch, self._pending = self._pending, None
                if not patch:
                    return
                # Counted from the start of the send, so a timer armed meanwhile waits a full interval.
                self._last_sent = self._clock()
            self._send(patch)

    def _send(self, status: dict[str, Any]) -> None:
        try:
            token = self.token_path.read_text(encoding="utf-8").strip()
        except OSError as err:
            self.patches_failed += 1
            log.warning("status patch skipped: cannot read the token file %s: %s", self.token_path, err)
            return
        try:
            response = self._client.patch(
                self.url,
                json={"status": status},
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"},
            )
        except httpx.HTTPError as err:
            self.patches_failed += 1
            log.warning("status patch to %s failed: %s: %s", self.url, type(err).__name__, err)
            return
        if response.is_success:
            self.patches_sent += 1
        else:
            self.patches_failed += 1
            log.warning(
                "status patch to %s failed: HTTP %d: %s", self.url, response.status_code, response.text[:300]
            )


def _ssl_context(ca_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(ca_path))
    except (OSError, ssl.SSLError) as err:
        log.warning("cannot load the cluster CA %s (%s); status patches will likely fail", ca_path, err)
    return context
