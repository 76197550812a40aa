"""The kmock handler that fronts the emulation.

Every request is recorded as a `kmock.Request` (tests filter and assert on
them with kmock's DSL), reactions a test adds with kmock's `<<` answer first
(fault injection), and everything else goes to the Router. Exceptions that
escape the Router are server bugs: answered with 500 and kept in
`internal_errors`.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

from support.kubeapi.errors import ApiError, internal
from support.kubeapi.http import Router
from support.kubeapi.routes import Route, flag, json_response, parse_path

logger = logging.getLogger(__name__)


@attrs.define(kw_only=True)
class KubeHandler(kmock.RawHandler):
    """kmock's handler, with the Kubernetes API served by `router` behind any user-defined reactions."""

    router: Router | None = None
    # Exceptions that escaped the router (server bugs): each became a 500 answer; tests assert there are none.
    internal_errors: list[str] = attrs.field(factory=list)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        assert self.router is not None
        body = await raw_request.read()
        route = parse_path(raw_request.path)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            data=data,
            body=body,
            text=body.decode("utf-8", "replace"),
            action=action_of(raw_request.method, route, raw_request.query),
            resource=kmock.resource(route.group, route.version, route.plural)
            if route and route.plural
            else None,
            namespace=route.namespace if route else None,
            name=route.name if route else None,
            subresource=route.subresource if route else None,
        )
        self._requests.append(request)
        try:
            if self._payloads:
                try:
                    return await self._handle(request)
                except NotImplementedError:
                    pass  # no reaction matched: serve it as the API server
            return await self.router.serve(request)
        except ApiError as e:
            if e.code >= 500:
                logger.error("%s %s: %s", raw_request.method, raw_request.path_qs, e)
            return json_response(e.status_body(), status=e.code)
        except Exception as e:
            trace = traceback.format_exc()
            self.internal_errors.append(f"{raw_request.method} {raw_request.path_qs}: {trace}")
            logger.error("internal error on %s %s:\n%s", raw_request.method, raw_request.path_qs, trace)
            error = internal(repr(e))
            return json_response(error.status_body(), status=500)


def action_of(method: str, route: Route | None, query: Any) -> kmock.action | None:
    if route is None or route.plural is None:
        return None
    method = method.upper()
    if method == "GET":
        return (
            kmock.action.WATCH
            if route.legacy_watch or flag(query, "watch")
            else (kmock.action.LIST if route.name is None else kmock.action.FETCH)
        )
    if method == "POST" and route.name is None:
        return kmock.action.CREATE
    if method in ("PATCH", "PUT") and route.name is not None:
        return kmock.action.UPDATE
    if method == "DELETE" and route.name is not None:
        return kmock.action.DELETE
    return None
