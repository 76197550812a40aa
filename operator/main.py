"""``tuneforge-operator``: kopf, with our handlers, settings and client."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from typing import Any

import kopf

from tuneforge.operator import handlers, reconcile
from tuneforge.operator.config import from_env
from tuneforge.operator.kube import Kube


@kopf.on.login(registry=handlers.REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster account first, then $KUBECONFIG — the same order lightkube uses."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup(registry=handlers.REGISTRY)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    handlers.configure(settings)
    memo["ctx"] = reconcile.Context(
        kube=Kube(), config=from_env(dict(os.environ)), post_event=handlers.post_event
    )


@kopf.on.cleanup(registry=handlers.REGISTRY)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx = memo.get("ctx")
    if ctx is not None:
        await ctx.kube.close()


async def run(
    *,
    namespaces: list[str] | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness: str | None = None,
    peering: str | None = None,
) -> None:
    """Runs the operator until ``stop_flag`` is set (tests run it in-process)."""
    await kopf.operator(
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        standalone=peering is None,
        peering_name=peering,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness,
        registry=handlers.REGISTRY,
        memo=kopf.Memo(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tuneforge-operator",
        description="Runs the Tuneforge operator: FineTuneJobs become training Jobs.",
    )
    parser.add_argument(
        "-n", "--namespace", action="append", help="watch only this namespace (repeatable); default: all"
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file; default: in-cluster account, then $KUBECONFIG")
    parser.add_argument("--liveness", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--peering", help="kopf peering name, for several replicas")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(namespaces=args.namespace, liveness=args.liveness, peering=args.peering))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
