"""A Kubernetes API server emulation on 127.0.0.1 for kopf, kubectl and HTTP clients.

Built on kmock (the request recorder and reaction DSL) with the API server's
semantics filled in: metadata, resourceVersions and watches, selectors,
status subresources, patches, CRD registration, garbage collection, Status
errors, server-side tables and OpenAPI for `kubectl explain`.

    with KubeApiServer(tmp_path) as server:
        server.load_crds()
        server.client.create({...})

Where it knowingly differs from a real cluster:

- any bearer token is accepted and RBAC is not enforced (a request without a token gets 401);
- namespaces appear on first use; there are no controllers but the garbage collector and the
  CRD/namespace cleanup: no kubelet (pods stay Pending until the kubelet fixture writes their
  status), no Job controller, no graceful pod deletion (pods go at once);
- field selectors accept any dotted path; Pod spec immutability is not enforced;
- server-side apply is a merge patch (no managedFields); strategic merge patch knows the list keys of
  the kinds Tuneforge uses (`patching.MERGE_KEYS`);
- protobuf request bodies are understood for the kinds `kubectl create` generators post for
  ConfigMap, Secret, Namespace, ServiceAccount and RBAC (`kubectl create job` gets 415);
- `kubectl explain` works for custom resources only; CRD versions convert by rewriting apiVersion.
"""

from support.kubeapi.client import KubeApiError, KubeClient
from support.kubeapi.server import KubeApiServer

__all__ = ["KubeApiError", "KubeApiServer", "KubeClient"]
