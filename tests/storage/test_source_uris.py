"""hf:// and https:// source URIs: parsed into repo / host and path, bad ones refused saying why."""

from __future__ import annotations

import pytest

from tuneforge import exitcodes
from tuneforge.storage import StorageError, parse_uri
from tuneforge.storage.hub import HubRepo, HubRepoType


@pytest.mark.parametrize(
    ("text", "repo_type", "repo_id", "path"),
    [
        ("hf://Qwen/Qwen2.5-0.5B", "model", "Qwen/Qwen2.5-0.5B", ""),
        ("hf://models/org/name", "model", "org/name", ""),
        ("hf://datasets/org/name", "dataset", "org/name", ""),
        ("hf://datasets/org/name/data/train.jsonl", "dataset", "org/name", "data/train.jsonl"),
        ("hf://org/name/sub/", "model", "org/name", "sub"),
    ],
)
def test_hf_uris_name_a_repo_and_a_path_in_it(
    text: str, repo_type: HubRepoType, repo_id: str, path: str
) -> None:
    uri = parse_uri(text)
    assert uri.scheme == "hf"
    assert HubRepo.from_uri(uri) == HubRepo(repo_type, repo_id, path)
    assert str(HubRepo.from_uri(uri)) == text.replace("hf://models/", "hf://").rstrip("/")


def test_https_uris_keep_host_port_and_path() -> None:
    uri = parse_uri("https://Example.com:8443/data/my%20file.jsonl")
    assert (uri.bucket, uri.path, uri.name) == ("example.com:8443", "data/my%20file.jsonl", "my%20file.jsonl")
    assert str(uri) == "https://example.com:8443/data/my%20file.jsonl"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hf://just-org", "hf:// needs org/name"),
        ("hf://datasets/org", "hf:// needs org/name"),
        ("hf://org/na--me", "'na--me' is not a valid Hub namespace or repository name"),
        ("hf://-org/name", "'-org' is not a valid Hub namespace"),
        ("hf://org/name@v1.0", "a revision does not belong in the URI; set spec.model.revision"),
        ("hf://spaces/org/app", "Spaces are neither models nor datasets"),
        ("hf://org/name/a//b", "empty path segment"),
        ("hf://org/name/../other", "'.' and '..' segments are not allowed"),
        ("https://example.com/", "an https:// source names one file"),
        ("https://example.com", "an https:// source names one file"),
        ("https://example.com:99999/x.jsonl", "the host (and optional port) is missing or not valid"),
        ("https:///x.jsonl", "the host (and optional port) is missing or not valid"),
        ("https://example.com/a/%2e%2e/b.jsonl", "'.' and '..' path segments are not allowed"),
        ("https://example.com/x.jsonl?sig=abc", "no query or fragment"),
    ],
)
def test_bad_hf_and_https_uris_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(StorageError) as caught:
        parse_uri(text)
    assert (caught.value.reason, caught.value.exit_code) == ("InvalidUri", exitcodes.INVALID_INPUT)
    assert says in str(caught.value)
    assert "hf://datasets/org/name" in str(caught.value)  # says what is allowed


def test_credentials_in_an_https_uri_are_refused_without_being_echoed() -> None:
    with pytest.raises(StorageError) as caught:
        parse_uri("https://alice:hunter2secret@example.com/data.jsonl")
    assert "fetched anonymously" in str(caught.value)
    assert "hunter2secret" not in str(caught.value) and "alice" not in str(caught.value)
