"""One run of ``tuneforge export``: identity, reuse check, build, publish, report.

The steps are the module's functions; ``Export`` holds what they share (the
request, the reporter, the inputs fetched so far, the artifacts published
so far — those are reported even when a later destination fails, and a
retry finds them reused).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneforge import __version__
from tuneforge.api.modelexport import PLURAL, ExportArtifact
from tuneforge.exporter import cache, card, destinations, hub_destination, sources
from tuneforge.exporter.artifacts import ArtifactKind, ArtifactRecord
from tuneforge.exporter.build import Built, Deadline, Inputs, build
from tuneforge.exporter.hub_destination import HubTarget
from tuneforge.exporter.identity import Identity
from tuneforge.exporter.model_files import read_config
from tuneforge.exporter.outcome import Outcome, success_message
from tuneforge.exporter.spec import Request, load_export, resolve
from tuneforge.reporting import Reporter, reporter_from_env
from tuneforge.storage import parse_uri
from tuneforge.storage.manifest import Manifest, ManifestEntry, hash_file

log = logging.getLogger("tuneforge.exporter")

GGUF_FORMATS = ("gguf", "adapter-gguf")


@dataclass
class Target:
    """One destination of the export, and what it holds."""

    index: int
    destination: str
    """As the spec names it: a URI prefix, or hf://org/name."""
    kind: ArtifactKind
    identity: Identity
    artifact: str
    """The artifact's URI there."""
    hub: HubTarget | None = None
    record: ArtifactRecord | None = None
    reused: bool = False

    def wire(self) -> dict[str, Any]:
        record = self.record
        entry = ExportArtifact(
            destination=self.destination,
            uri=self.artifact,
            format=self.kind.format,
            quantization=self.kind.quantization,
            bytes=record.bytes if record else None,
            sha256=record.sha256 if record else None,
            digest=self.identity.digest,
            reused=self.reused,
            llama_cpp_version=self.identity.llama_cpp,
        )
        return entry.wire()


class Export:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir: Path = args.workdir
        self.request: Request | None = None
        self.reporter: Reporter | None = None
        self.targets: list[Target] = []
        self.inputs: Inputs | None = None

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """Status entries of the destinations that hold the artifact now."""
        return [t.wire() for t in self.targets if t.record is not None]

    def execute(self) -> tuple[list[dict[str, Any]], str]:
        args = self.args
        export = load_export(args.spec)
        self.request = request = resolve(
            export, adapter=args.adapter_uri, base=args.base_model_uri, base_revision=args.base_revision
        )
        log.info(
            "ModelExport %s/%s: %s of %s", request.namespace, request.name, request.kind.name, request.adapter
        )
        self.reporter = reporter_from_env(request.namespace, request.name, self.workdir, plural=PLURAL)
        self.inputs = Inputs(self.workdir, self._fetch_adapter, self._fetch_base, self._fetch_cached_merge)
        self.targets = plan_targets(request, self._identity_parts(request))
        pending = [t for t in self.targets if not _check(t)]
        if pending:
            built = self._build(request)
            for target in pending:
                self._publish(request, target, built)
                self._report()
        else:
            log.info("every destination holds this artifact already; nothing was built")
        self._report()
        artifacts = [t.wire() for t in self.targets]
        return artifacts, success_message(request.kind.name, artifacts)

    def report(self, outcome: Outcome) -> None:
        """The last status patch, then the reporter's sinks close (a ModelExport's status has no progress)."""
        if self.reporter is None:
            return
        self.reporter.status({"artifacts": outcome.artifacts} if outcome.artifacts else {}, force=True)
        for sink in self.reporter.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - reporting never fails the export
                log.exception("closing the %s failed", type(sink).__name__)

    def _report(self) -> None:
        if self.reporter is not None and self.artifacts:
            self.reporter.status({"artifacts": self.artifacts})

    def _identity_parts(self, request: Request) -> tuple[str, str, str | None]:
        """(adapter digest, base version, llama.cpp version) — everything but format and archive."""
        llama = None
        if request.kind.format in GGUF_FORMATS:
            from tuneforge.exporter.gguf import llama_cpp_version

            llama = llama_cpp_version()
        adapter = sources.adapter_digest_from_manifest(request.adapter)
        if adapter is None:
            assert self.inputs is not None
            adapter = sources.adapter_digest_from_files(self.inputs.adapter())
        return adapter, sources.base_version(request.base, request.base_revision), llama

    def _build(self, request: Request) -> Built:
        assert self.inputs is not None
        spec = request.export.spec
        built = build(request.kind, self.inputs, Deadline(spec.timeout_seconds), self._note)
        if built.merged is not None and not built.merged_was_cached and request.kind.format in GGUF_FORMATS:
            self._note("keeping the merged model for later exports")
            cache.store(cache.cache_uri(request.adapter), built.merged, self._merge_identity())
        return built

    def _publish(self, request: Request, target: Target, built: Built) -> None:
        self._note(f"publishing {target.kind.name} to {target.destination}")
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if target.hub is None:
            published = destinations.publish(built.path, target.artifact, target.kind)
            record = _record(target, published.bytes, published.sha256, created)
            destinations.write_record(target.artifact, record)
        else:
            local = built.folder if target.kind.is_folder and built.folder is not None else built.path
            size, sha256, files = _local_summary(local, target.kind)
            record = _record(target, size, sha256, created, files)
            hub_destination.publish(
                local,
                target.hub,
                target.kind,
                record,
                card=self._card(request, target, built),
                staging=self.workdir / "hub-staging",
            )
        target.record = record
        log.info("published %s (%d bytes, sha256 %s)", target.artifact, record.bytes, record.sha256)

    def _card(self, request: Request, target: Target, built: Built) -> str:
        config, status = sources.run_record_of(request.adapter)
        readme_uri = str(parse_uri(request.base).join("README.md"))
        readme = sources.read_optional_text(readme_uri, revision=request.base_revision)
        base_config = read_config(built.merged) if built.merged is not None else None
        facts = card.CardFacts(
            repo=target.hub.repo if target.hub else target.destination,
            format=target.kind.format,
            base_model=request.base,
            quantization=target.kind.quantization,
            file_name=target.kind.hub_name,
            license=card.license_of(readme, base_config),
            training=card.training_from_record(config, status),
            digest=target.identity.digest,
            llama_cpp_version=target.identity.llama_cpp,
            tuneforge_version=__version__,
        )
        return card.render_card(facts)

    def _merge_identity(self) -> Identity:
        assert self.targets
        first = self.targets[0].identity
        return cache.merge_identity(first.adapter, first.base)

    def _fetch_adapter(self, dest: Path) -> Path:
        assert self.request is not None
        self._note(f"fetching the adapter {self.request.adapter}")
        return sources.fetch_folder(self.request.adapter, dest)

    def _fetch_base(self, dest: Path) -> Path:
        assert self.request is not None
        self._note(f"fetching the base model {self.request.base}")
        return sources.fetch_folder(self.request.base, dest, revision=self.request.base_revision)

    def _fetch_cached_merge(self, dest: Path) -> Path | None:
        assert self.request is not None
        return cache.fetch_cached(cache.cache_uri(self.request.adapter), self._merge_identity().digest, dest)

    def _note(self, message: str) -> None:
        log.info("%s", message)


def plan_targets(request: Request, parts: tuple[str, str, str | None]) -> list[Target]:
    """One Target per destination, with the identity of what it should hold."""
    adapter, base, llama = parts
    targets = []
    for index, destination in enumerate(request.export.spec.destinations):
        kind = request.kind
        if destination.huggingface is not None:
            kind = kind.unarchived  # a repository holds files, not archives
            hub = HubTarget(index, destination.huggingface.repo, destination.huggingface.private)
            where, artifact = hub.destination, hub.artifact_uri(kind)
        else:
            assert destination.uri is not None
            hub, where = None, destination.uri
            artifact = destinations.artifact_uri(destination.uri, kind)
        identity = Identity(adapter, base, kind.format, kind.quantization, kind.archive, llama)
        targets.append(Target(index, where, kind, identity, artifact, hub))
    return targets


def _check(target: Target) -> bool:
    """Whether the destination holds the artifact already (then it is reused)."""
    digest = target.identity.digest
    if target.hub is not None:
        record = hub_destination.holding(target.hub, target.kind, digest)
    else:
        record = destinations.holding(target.artifact, target.kind, digest)
    if record is not None:
        log.info("%s holds this artifact already (%s): reused", target.artifact, digest)
        target.record, target.reused = record, True
    return target.reused


def _record(
    target: Target, size: int, sha256: str, created: str, files: dict[str, str] | None = None
) -> ArtifactRecord:
    return ArtifactRecord(
        digest=target.identity.digest,
        identity=target.identity.wire(),
        format=target.kind.format,
        quantization=target.kind.quantization,
        bytes=size,
        sha256=sha256,
        llama_cpp_version=target.identity.llama_cpp,
        created=created,
        files=files or None,
    )


def _local_summary(local: Path, kind: ArtifactKind) -> tuple[int, str, dict[str, str]]:
    """Size, sha256 (of the manifest, for a folder) and file list of a local artifact."""
    if not local.is_dir():
        digest = hash_file(local)
        return digest.size, digest.sha256, {}
    entries = []
    for rel, path in hub_destination.folder_files(local).items():
        digest = hash_file(path)
        entries.append(ManifestEntry(path=rel, size=digest.size, sha256=digest.sha256))
    manifest = Manifest(files=entries).to_json().encode()
    files = {e.path: e.sha256 for e in entries}
    return sum(e.size for e in entries), hashlib.sha256(manifest).hexdigest(), files
