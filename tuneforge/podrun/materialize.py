"""Volumes and environment of a pod spec, made concrete on this machine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tuneforge.podrun.paths import Mount, rewrite
from tuneforge.podrun.resolver import ConfigError, Resolver

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown ones kept, $$ escapes."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(repl, value)


def field_ref(path: str, pod: dict[str, Any]) -> str:
    meta = pod.get("metadata", {})
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": "localhost",
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in values:
        return str(values[path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(meta.get(source, {}).get(path[len(prefix) + 2 : -2], ""))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _secret_value(resolver: Resolver, ref: dict[str, Any]) -> str | None:
    values = resolver.secret(ref["name"])
    optional = bool(ref.get("optional"))
    if values is None:
        if optional:
            return None
        raise ConfigError(f'secret "{ref["name"]}" not found')
    if ref["key"] not in values:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in Secret {ref['name']}")
    return values[ref["key"]].decode()


def _config_value(resolver: Resolver, ref: dict[str, Any]) -> str | None:
    values = resolver.config_map(ref["name"])
    optional = bool(ref.get("optional"))
    if values is None:
        if optional:
            return None
        raise ConfigError(f'configmap "{ref["name"]}" not found')
    if ref["key"] not in values:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in ConfigMap {ref['name']}")
    return values[ref["key"]]


def container_env(container: dict[str, Any], pod: dict[str, Any], resolver: Resolver) -> dict[str, str]:
    """The container's environment as Kubernetes computes it (before path mapping)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            ref = source["secretRef"]
            secret = resolver.secret(ref["name"])
            if secret is None and not ref.get("optional"):
                raise ConfigError(f'secret "{ref["name"]}" not found')
            env.update({prefix + k: v.decode() for k, v in (secret or {}).items()})
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = resolver.config_map(ref["name"])
            if data is None and not ref.get("optional"):
                raise ConfigError(f'configmap "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for item in container.get("env") or []:
        value: str | None
        if "value" in item:
            value = expand(str(item["value"]), env)
        elif "valueFrom" in item:
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                value = _secret_value(resolver, source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = _config_value(resolver, source["configMapKeyRef"])
            elif "fieldRef" in source:
                value = field_ref(source["fieldRef"]["fieldPath"], pod)
            else:
                raise ConfigError(f"env {item['name']}: unsupported valueFrom {sorted(source)}")
        else:
            value = ""
        if value is not None:
            env[item["name"]] = value
    return env


def _write(folder: Path, files: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in files}
    for key, rel in chosen.items():
        if key not in files:
            raise ConfigError(f"couldn't find key {key}")
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[key])


def _projected(folder: Path, sources: list[dict[str, Any]], pod: dict[str, Any], resolver: Resolver) -> None:
    account = pod.get("spec", {}).get("serviceAccountName", "default")
    for source in sources:
        if "serviceAccountToken" in source:
            token = resolver.service_account_token(account) or ""
            item = {"key": "token", "path": source["serviceAccountToken"]["path"]}
            _write(folder, {"token": token.encode()}, [item])
        elif "configMap" in source:
            ref = source["configMap"]
            data = resolver.config_map(ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref["name"]}" not found')
            _write(folder, {k: v.encode() for k, v in data.items()}, ref.get("items"))
        elif "secret" in source:
            ref = source["secret"]
            secret = resolver.secret(ref["name"])
            if secret is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref["name"]}" not found')
            _write(folder, secret, ref.get("items"))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"]["items"]:
                value = field_ref(item["fieldRef"]["fieldPath"], pod)
                _write(folder, {"v": value.encode()}, [{"key": "v", "path": item["path"]}])


def materialize_volumes(pod: dict[str, Any], root: Path, resolver: Resolver) -> dict[str, Path]:
    """Creates a folder per volume under ``root``; returns volume name -> folder.

    A persistentVolumeClaim is the folder the resolver maps the claim to.
    """
    folders: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            local = resolver.persistent_volume_claim(claim)
            if local is None:
                raise ConfigError(f'persistentvolumeclaim "{claim}" not found')
            folders[volume["name"]] = local
            continue
        folder = root / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            pass
        elif "configMap" in volume:
            ref = volume["configMap"]
            data = resolver.config_map(ref["name"])
            if data is None and not ref.get("optional"):
                raise ConfigError(f'configmap "{ref["name"]}" not found')
            files = {k: v.encode() for k, v in (data or {}).items()}
            _write(folder, files, ref.get("items") if data else None)
        elif "secret" in volume:
            ref = volume["secret"]
            secret = resolver.secret(ref["secretName"])
            if secret is None and not ref.get("optional"):
                raise ConfigError(f'secret "{ref["secretName"]}" not found')
            _write(folder, secret or {}, ref.get("items") if secret else None)
        elif "projected" in volume:
            _projected(folder, volume["projected"]["sources"], pod, resolver)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(f"volume {volume['name']}: {', '.join(kinds)} volumes cannot run locally")
        folders[volume["name"]] = folder
    return folders


def container_mounts(
    container: dict[str, Any], volumes: dict[str, Path], termination_file: Path
) -> list[Mount]:
    mounts = []
    for mount in container.get("volumeMounts") or []:
        local = volumes[mount["name"]]
        if mount.get("subPath"):
            local = local / mount["subPath"]
        mounts.append(Mount(mount["mountPath"], local))
    mounts.append(Mount(container.get("terminationMessagePath", "/dev/termination-log"), termination_file))
    return mounts


def process_args(container: dict[str, Any], env: dict[str, str], mounts: list[Mount]) -> list[str]:
    """command + args, $(VAR)-expanded and path-mapped."""
    argv = [expand(str(a), env) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        name = container["name"]
        raise ConfigError(f"container {name}: no command (an image's entrypoint cannot run locally)")
    return [rewrite(a, mounts) for a in argv]
