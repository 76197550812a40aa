"""Exit codes shared by every container Tuneforge runs.

The Job's podFailurePolicy reads them: codes in ``NON_RETRYABLE`` fail the
Job at once (retrying cannot help: bad input, missing object, refused
credentials), ``PREEMPTED`` is retried without counting against the backoff
limit, any other non-zero code is retried up to the backoff limit.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
FAILED: Final = 1
"""Something went wrong that a retry may fix (network, node trouble)."""
USAGE: Final = 2
"""The command line was wrong (argparse's own code)."""
INVALID_INPUT: Final = 3
"""The spec or the dataset is invalid: fix the input."""
NOT_FOUND: Final = 4
"""A source object or bucket does not exist."""
ACCESS_DENIED: Final = 5
"""Credentials are missing or refused."""
UNSUPPORTED: Final = 6
"""The request cannot run here (method on this hardware, missing provider)."""
OUT_OF_MEMORY: Final = 7
"""The process ran out of (GPU) memory: lower batch size or sequence length."""
TIMED_OUT: Final = 8
"""A step ran past its configured time limit (e.g. a ModelExport's timeoutSeconds): raise the limit."""

PREEMPTED: Final = 143
"""Stopped by SIGTERM (preemption, spot reclaim, node drain, pod deletion) after saving a checkpoint.

128 + SIGTERM(15): what a container runtime reports for any process that SIGTERM ends (a shell
wrapper, a fetch step), so one Ignore rule retries all of them without counting. The trainer exits
with it on purpose once its checkpoint is uploaded.
"""

NON_RETRYABLE: Final = (INVALID_INPUT, NOT_FOUND, ACCESS_DENIED, UNSUPPORTED, OUT_OF_MEMORY, TIMED_OUT)
