"""The exporter's pure rules: artifact names, identity digests, the spec and the command line, the
termination message's artifacts, model-card metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tuneforge.exporter.artifacts import ArtifactKind, effective_quantization
from tuneforge.exporter.card import CardFacts, Training, front_matter, hub_id, license_of, render_card
from tuneforge.exporter.errors import InvalidSpec
from tuneforge.exporter.hub_destination import hub_token
from tuneforge.exporter.identity import Identity, files_digest
from tuneforge.exporter.outcome import fit_artifacts, success_message
from tuneforge.exporter.spec import parse_export, resolve
from tuneforge.termination import MAX_BYTES, termination_message


@pytest.mark.parametrize(
    ("fmt", "quantization", "archive", "name", "folder"),
    [
        ("adapter", None, "none", "adapter", True),
        ("adapter", None, "zip", "adapter.zip", False),
        ("merged", None, "zip", "merged.zip", False),
        ("gguf", None, "none", "model-q8_0.gguf", False),
        ("gguf", "q4_K_M", "zip", "model-q4_K_M.gguf", False),  # a GGUF is one file: never zipped
        ("adapter-gguf", None, "none", "adapter-f16.gguf", False),
    ],
)
def test_artifact_names(fmt: str, quantization: str | None, archive: str, name: str, folder: bool) -> None:
    kind = ArtifactKind(fmt, effective_quantization(fmt, quantization), archive)
    assert (kind.name, kind.is_folder) == (name, folder)
    assert kind.unarchived.is_folder == (fmt in ("adapter", "merged"))


def test_identity_digest_changes_with_every_input_and_nothing_else() -> None:
    base = Identity("sha256:a", "file:///m@listing:1", "gguf", "q8_0", "none", "llama.cpp 0c1e570")
    assert base.digest == Identity(**base.__dict__).digest
    assert base.digest.startswith("sha256:") and len(base.digest) == 71
    changes = [
        {"adapter": "sha256:b"},
        {"base": "file:///m@listing:2"},
        {"format": "merged"},
        {"quantization": "q4_K_M"},
        {"archive": "zip"},
        {"llama_cpp": "llama.cpp 1234567"},
        {"build": 2},
    ]
    digests = {Identity(**{**base.__dict__, **change}).digest for change in changes}
    assert len(digests) == len(changes) and base.digest not in digests
    assert files_digest([("b", "2"), ("a", "1")]) == files_digest([("a", "1"), ("b", "2")])


MANIFEST = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "ModelExport",
    "metadata": {"name": "x", "namespace": "ns"},
    "spec": {"source": {"fineTuneJob": "tiny"}, "destinations": [{"uri": "s3://bucket/out"}]},
}


def test_a_finetunejob_source_needs_the_uris_the_operator_resolves() -> None:
    export = parse_export(json.dumps(MANIFEST))
    with pytest.raises(InvalidSpec, match="spec.source.fineTuneJob 'tiny' needs --adapter-uri"):
        resolve(export, adapter=None, base="s3://m/base", base_revision=None)
    request = resolve(export, adapter="s3://out/tiny/adapter", base="hf://org/base", base_revision="main")
    assert (request.adapter, request.base, request.base_revision) == (
        "s3://out/tiny/adapter",
        "hf://org/base",
        "main",
    )
    assert request.kind.name == "adapter"


def test_command_line_and_spec_must_agree() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(MANIFEST))
    doc["spec"]["source"] = {"adapter": "s3://bkt/adapter", "baseModel": "s3://bkt/base"}
    export = parse_export(json.dumps(doc))
    assert resolve(export, adapter=None, base=None, base_revision=None).adapter == "s3://bkt/adapter"
    with pytest.raises(InvalidSpec, match="--adapter-uri s3://other/adapter contradicts spec.source.adapter"):
        resolve(export, adapter="s3://other/adapter", base=None, base_revision=None)
    with pytest.raises(InvalidSpec, match="--base-revision applies to hf:// base models only"):
        resolve(export, adapter=None, base=None, base_revision="v1")


def test_a_bad_spec_names_the_field() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(MANIFEST))
    doc["spec"]["format"] = "onnx"
    with pytest.raises(InvalidSpec, match=r"not a valid ModelExport: spec.format: Input should be"):
        parse_export(json.dumps(doc), source="export.yaml")
    with pytest.raises(InvalidSpec, match="not valid YAML"):
        parse_export("a: [", source="export.yaml")


def test_the_artifacts_of_sixteen_destinations_fit_the_termination_message() -> None:
    entry = {
        "destination": "s3://a-rather-long-bucket-name/exports/team-a/models/tiny-llama-chat",
        "uri": "s3://a-rather-long-bucket-name/exports/team-a/models/tiny-llama-chat/model-q4_K_M.gguf",
        "format": "gguf",
        "quantization": "q4_K_M",
        "bytes": 123456789,
        "sha256": "a" * 64,
        "digest": "sha256:" + "b" * 64,
        "reused": False,
        "llamaCppVersion": "llama.cpp 0c1e570 (llama-cpp-python 0.3.36)",
    }
    assert fit_artifacts([entry] * 2) == [entry] * 2
    fitted = fit_artifacts([entry] * 16)
    assert len(fitted) == 16 and all("destination" in e and "reused" in e for e in fitted)
    assert "digest" not in fitted[0]
    text = termination_message("Succeeded", "x" * 300, artifacts=fitted)
    assert len(text.encode()) <= MAX_BYTES and len(json.loads(text)["artifacts"]) == 16


def test_success_message_says_what_was_reused() -> None:
    artifacts = [{"destination": "s3://a/x", "bytes": 2_500_000, "reused": True}, {"destination": "hf://o/r"}]
    assert success_message("model-q8_0.gguf", artifacts) == (
        "model-q8_0.gguf (2.5 MB) published to 2 destinations (1 reused): s3://a/x, hf://o/r"
    )


def test_hub_tokens_come_per_destination_never_from_the_read_token() -> None:
    env = {"HF_TOKEN_DESTINATION_1": " tok1 ", "HF_TOKEN": "the source's read token"}
    assert (hub_token(1, env), hub_token(0, env)) == ("tok1", "")


def test_card_metadata_names_hub_sources_only_and_keeps_the_base_licence() -> None:
    readme = "---\nlicense: other\nlicense_name: llama3.2\nlicense_link: https://example.com/l\n---\nbody"
    assert license_of(readme) == {
        "license": "other",
        "license_name": "llama3.2",
        "license_link": "https://example.com/l",
    }
    assert license_of("no front matter", {"license": "mit"}) == {"license": "mit"}
    assert (hub_id("hf://org/name"), hub_id("hf://datasets/org/d", datasets=True), hub_id("s3://b/k")) == (
        "org/name",
        "org/d",
        None,
    )
    facts = CardFacts(
        repo="acme/tiny",
        format="adapter",
        base_model="s3://private-bucket/models/llama",
        license={"license": "apache-2.0"},
        training=Training(
            dataset="hf://datasets/org/alpaca", hyperparameters={"loraRank": 8}, metrics={"evalLoss": 1.5}
        ),
    )
    text = render_card(facts)
    meta = front_matter(text)
    assert meta["datasets"] == ["org/alpaca"] and "base_model" not in meta and meta["license"] == "apache-2.0"
    assert "private-bucket" not in text and "`llama` (from a private store)" in text
    assert "| loraRank | 8 |" in text and "| evalLoss | 1.5 |" in text


def test_failures_map_to_reasons_and_exit_codes() -> None:
    from tuneforge import exitcodes
    from tuneforge.exporter.errors import AdapterInvalid
    from tuneforge.exporter.gguf import GgufError
    from tuneforge.exporter.main import Terminated, _failure
    from tuneforge.storage import StorageError

    published = [{"destination": "s3://b/x", "reused": False}]
    cases = [
        (StorageError("AccessDenied", "no"), "AccessDenied", exitcodes.ACCESS_DENIED),
        (GgufError("UnrecognizedTokenizer", "bpe"), "UnrecognizedTokenizer", exitcodes.UNSUPPORTED),
        (AdapterInvalid("bad"), "AdapterInvalid", exitcodes.INVALID_INPUT),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "OutOfMemory", exitcodes.OUT_OF_MEMORY),
        (Terminated(), "Terminated", exitcodes.PREEMPTED),
    ]
    for error, reason, code in cases:
        outcome = _failure(error, published)
        assert (outcome.reason, outcome.exit_code, outcome.artifacts) == (reason, code, published)


def test_an_invalid_export_ends_with_a_termination_message(export_run: Any) -> None:
    run = export_run({"source": {"fineTuneJob": "tiny"}, "destinations": []})
    assert run.exit_code == 3
    assert run.termination["reason"] == "InvalidSpec"
    assert "spec.destinations: List should have at least 1 item" in run.termination["message"]
    missing = export_run({"source": {"fineTuneJob": "tiny"}, "destinations": [{"uri": "s3://bkt/out"}]})
    assert (missing.exit_code, missing.termination["reason"]) == (3, "InvalidSpec")
    assert "needs --adapter-uri" in missing.termination["message"]


def test_the_deadline_counts_from_the_first_gguf_step() -> None:
    from tuneforge.exporter.build import Deadline
    from tuneforge.exporter.gguf import GgufError

    now = [100.0]
    deadline = Deadline(60, clock=lambda: now[0])
    now[0] = 500.0  # fetching and merging took long: not counted
    assert deadline.left("the conversion") == 60
    now[0] = 530.0
    assert deadline.left("quantizing") == 30
    now[0] = 561.0
    with pytest.raises(
        GgufError, match=r"spec.timeoutSeconds \(60 s\) ran out before the verification"
    ) as err:
        deadline.left("the verification")
    assert err.value.reason == "ConversionTimeout"
