"""HTTP: the URLs and verbs of the Kubernetes API mapped onto `ApiServer`.

Authentication: any bearer token is accepted (a request without one gets
401); authorization (RBAC) is not emulated — Roles and RoleBindings are
stored but never enforced.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import aiohttp.web
from kmock._internal import rendering

from support.kubeapi import discovery, openapi, protobuf, tables, watch
from support.kubeapi.apiserver import CRD_KEY, ApiServer, DeleteOptions, WriteOptions
from support.kubeapi.errors import (
    bad_request,
    method_not_allowed,
    page_not_found,
    unauthorized,
    unsupported_media_type,
)
from support.kubeapi.resources import ResourceType
from support.kubeapi.routes import APPLY_PATCH, Route, flag, json_response, parse_body, parse_path
from support.kubeapi.selectors import (
    FieldRequirement,
    FieldSelector,
    parse_field_selector,
    parse_label_selector,
)

logger = logging.getLogger(__name__)

VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.1",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class Router:
    """Maps one parsed request to the API server and renders the answer."""

    def __init__(
        self, api: ApiServer, *, address: str, stopping: asyncio.Event, bookmark_interval: float
    ) -> None:
        self.api = api
        self.address = address
        self.stopping = stopping
        self.bookmark_interval = bookmark_interval

    async def serve(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        path = raw.path
        # What system:public-info-viewer lets anyone read.
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/version":
            return json_response(VERSION_INFO)
        if not raw.headers.get("Authorization", "").startswith("Bearer "):
            raise unauthorized()
        if path.startswith("/openapi/"):
            return self._openapi(path)
        accept = raw.headers.get("Accept", "")
        if path in ("/api", "/apis"):
            if discovery.wants_aggregated(accept):
                body = discovery.aggregated(self.api.registry, core=path == "/api")
                return json_response(body, content_type=discovery.AGGREGATED_V2)
            if path == "/api":
                return json_response(discovery.api_versions(self.address))
            return json_response(discovery.group_list(self.api.registry))
        if path == "/":
            return json_response(
                {"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz"]}
            )
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            found = discovery.group(self.api.registry, parts[1])
            if found is None:
                raise page_not_found(path)
            return json_response(found)
        route = parse_path(path)
        if route is None:
            raise page_not_found(path)
        if route.plural is None:
            doc = discovery.resource_list(self.api.registry, route.group, route.version)
            if doc is None:
                raise page_not_found(path)
            return json_response(doc)
        return await self._resource(request, route, accept)

    def _openapi(self, path: str) -> aiohttp.web.Response:
        crds = {k[3]: obj for k, obj in self.api.store.all() if k[:2] == CRD_KEY}
        if path.rstrip("/") == "/openapi/v3":
            return json_response(openapi.index(self.api.registry, crds))
        parts = [p for p in path.split("/") if p]
        if len(parts) == 5 and parts[2] == "apis":
            group, version = parts[3], parts[4]
        elif len(parts) == 4 and parts[2] == "api":
            group, version = "", parts[3]
        else:
            raise page_not_found(path)
        if not self.api.registry.in_version(group, version):
            raise page_not_found(path)
        return json_response(openapi.document(self.api.registry, crds, group, version))

    def _resolve(self, route: Route, path: str) -> ResourceType:
        assert route.plural is not None
        rtype = self.api.registry.get(route.group, route.version, route.plural)
        if rtype is None:
            raise page_not_found(path)
        if route.namespace and not rtype.namespaced:
            raise page_not_found(path)
        if route.subresource and rtype.subresource(route.subresource) is None:
            raise page_not_found(path)
        if route.subresource and route.subresource != "status":
            raise method_not_allowed(f"the subresource {route.subresource!r} is not served by this emulation")
        return rtype

    async def _resource(
        self, request: rendering.Request, route: Route, accept: str
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        rtype = self._resolve(route, raw.path)
        params = raw.query
        method = raw.method.upper()
        name, namespace = route.name, route.namespace
        if rtype.namespaced and name and not namespace:
            raise page_not_found(raw.path)
        if method == "GET" and (route.legacy_watch or flag(params, "watch")):
            return await self._watch(raw, rtype, route, accept)
        if method == "GET" and name is None:
            return self._list(raw, rtype, namespace, accept)
        if method == "GET" and name is not None:
            obj = self.api.get(rtype, namespace, name)
            return self._maybe_table(rtype, [obj], accept, params, single=True)
        content_type = raw.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if content_type == protobuf.CONTENT_TYPE:
            try:
                body: Any = protobuf.decode(request.body)
            except protobuf.ProtobufError as e:
                raise unsupported_media_type(f"{content_type} ({e})") from None
        else:
            body = parse_body(request.body, content_type)
        options = WriteOptions(
            strict=params.get("fieldValidation") == "Strict", dry_run=bool(params.get("dryRun"))
        )
        if method == "POST" and name is None:
            return json_response(self.api.create(rtype, namespace, body, options), status=201)
        if method == "PUT" and name is not None:
            return json_response(self.api.replace(rtype, namespace, name, body, route.subresource, options))
        if method == "PATCH" and name is not None:
            if body is None:
                raise bad_request("the patch is empty")
            obj, created = self.api.patch(
                rtype, namespace, name, body, content_type, route.subresource, options
            )
            return json_response(obj, status=201 if created and content_type == APPLY_PATCH else 200)
        if method == "DELETE" and route.subresource is None:
            return self._delete(raw, rtype, namespace, name, body)
        raise method_not_allowed()

    def _selectors(self, raw: aiohttp.web.BaseRequest, name: str | None) -> tuple[Any, FieldSelector]:
        labels = parse_label_selector(raw.query.get("labelSelector"))
        fields = parse_field_selector(raw.query.get("fieldSelector"))
        if name:
            fields = FieldSelector((*fields.requirements, FieldRequirement("metadata.name", True, name)))
        return labels, fields

    def _list(
        self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, namespace: str | None, accept: str
    ) -> aiohttp.web.Response:
        labels, fields = self._selectors(raw, None)
        try:
            limit = int(raw.query.get("limit") or 0)
        except ValueError:
            raise bad_request(f"limit must be an integer, not {raw.query.get('limit')!r}") from None
        items, rv, token = self.api.list(rtype, namespace, labels, fields, limit, raw.query.get("continue"))
        if tables.wants_table(accept):
            include = raw.query.get("includeObject", "Metadata")
            return json_response(
                tables.table(rtype, items, include_object=include, resource_version=rv, continue_token=token)
            )
        meta: dict[str, Any] = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
        return json_response(
            {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta, "items": items}
        )

    def _maybe_table(
        self, rtype: ResourceType, objs: list[dict[str, Any]], accept: str, params: Any, *, single: bool
    ) -> aiohttp.web.Response:
        if tables.wants_table(accept):
            include = params.get("includeObject", "Metadata")
            return json_response(tables.table(rtype, objs, include_object=include))
        return json_response(objs[0] if single else objs)

    def _delete(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        body: Any,
    ) -> aiohttp.web.Response:
        body = body if isinstance(body, dict) else {}
        propagation = raw.query.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = flag(raw.query, "orphanDependents")
        orphan = body.get("orphanDependents") if orphan is None else orphan
        if propagation is None and orphan is not None:
            propagation = "Orphan" if orphan else "Background"
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{propagation}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        options = DeleteOptions(
            propagation, body.get("preconditions"), bool(raw.query.get("dryRun") or body.get("dryRun"))
        )
        if name is None:
            labels, fields = self._selectors(raw, None)
            items, _, _ = self.api.list(rtype, namespace, labels, fields)
            deleted = []
            for item in items:
                obj, _ = self.api.delete(
                    rtype, item["metadata"].get("namespace"), item["metadata"]["name"], options
                )
                deleted.append(obj)
            return json_response(
                {
                    "kind": rtype.list_kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.api.store.rv)},
                    "items": deleted,
                }
            )
        obj, gone = self.api.delete(rtype, namespace, name, options)
        if gone and not rtype.is_crd:
            details = {"name": name, "kind": rtype.plural, "uid": obj["metadata"].get("uid")}
            if rtype.group:
                details["group"] = rtype.group
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        return json_response(obj)

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, route: Route, accept: str
    ) -> aiohttp.web.StreamResponse:
        labels, fields = self._selectors(raw, route.name)
        timeout = raw.query.get("timeoutSeconds")
        if timeout and not timeout.isdigit():
            raise bad_request(f"timeoutSeconds must be a non-negative integer, not {timeout!r}")
        req = watch.WatchRequest(
            rtype=rtype,
            namespace=route.namespace,
            labels=labels,
            fields=fields,
            resource_version=raw.query.get("resourceVersion"),
            send_initial_events=flag(raw.query, "sendInitialEvents"),
            bookmarks=bool(flag(raw.query, "allowWatchBookmarks")),
            timeout=float(timeout) if timeout and int(timeout) > 0 else None,
        )
        watch.check(req)  # a bad request is answered before the stream starts
        as_table = tables.wants_table(accept)
        include = raw.query.get("includeObject", "Metadata")

        def client_alive() -> bool:
            return raw.transport is not None and not raw.transport.is_closing()

        events = watch.stream(
            self.api,
            req,
            stopping=self.stopping,
            bookmark_interval=self.bookmark_interval,
            client_alive=client_alive,
        )
        response = aiohttp.web.StreamResponse(status=200)
        response.headers["Content-Type"] = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(raw)
        try:
            async for event in events:
                if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    event = {
                        **event,
                        "object": tables.table(rtype, [event["object"]], include_object=include),
                    }
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError, asyncio.CancelledError):
            pass  # the client went away (or the server is shutting down): nothing more to say
        finally:
            await events.aclose()
        return response
