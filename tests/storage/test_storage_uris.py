"""Parsing storage URIs: what is accepted, what is refused and how the refusal reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge import exitcodes
from tuneforge.storage import StorageError, StorageUri, parse_uri


@pytest.mark.parametrize(
    ("text", "scheme", "bucket", "path"),
    [
        ("s3://models/llama/7b", "s3", "models", "llama/7b"),
        ("s3://models/llama/7b/", "s3", "models", "llama/7b/"),
        ("s3://my.bucket-1", "s3", "my.bucket-1", ""),
        ("gs://data_sets/train.jsonl", "gs", "data_sets", "train.jsonl"),
        ("file:///abs/dir/file.txt", "file", "", "/abs/dir/file.txt"),
        ("file://rel/dir", "file", "", "rel/dir"),
        ("file://./rel", "file", "", "./rel"),
        ("file://../up/one", "file", "", "../up/one"),
        ("s3://b-1/key with spaces/x", "s3", "b-1", "key with spaces/x"),
    ],
)
def test_valid_uris_parse_and_round_trip(text: str, scheme: str, bucket: str, path: str) -> None:
    uri = parse_uri(text)
    assert (uri.scheme, uri.bucket, uri.path) == (scheme, bucket, path)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_scheme_is_case_insensitive() -> None:
    assert parse_uri("S3://bucket/k") == StorageUri("s3", "bucket", "k")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "it is empty"),
        (" s3://bucket/k", "whitespace"),
        ("s3://bucket/k\n", "whitespace"),
        ("s3://bucket/a\tb", "control character"),
        ("/abs/path", "no scheme"),
        ("bucket/key", "no scheme"),
        ("s3:/bucket/key", "'s3:' must be followed by '//'"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("gcs://bucket/x", "did you mean gs://"),
        ("s3://", "bucket name is missing"),
        ("s3:///key", "bucket name is missing"),
        ("s3://My_Bucket/k", "bucket name 'My_Bucket' is not valid"),
        ("s3://ab/k", "bucket name 'ab' is not valid"),
        ("s3://a..b/k", "bucket name 'a..b' is not valid"),
        ("s3://192.168.1.1/k", "bucket name '192.168.1.1' is not valid"),
        ("gs://-bucket/k", "bucket name '-bucket' is not valid"),
        ("s3://bucket:9000/k", "ports do not belong in the URI"),
        ("s3://bucket/a//b", "empty path segment"),
        ("gs://bucket/a/../b", "'..' segments are not allowed"),
        ("s3://bucket/./b", "'..' segments are not allowed"),
        ("s3://bucket/k?versionId=3", "no query or fragment"),
        ("gs://bucket/k#frag", "no query or fragment"),
        ("file://", "file:// needs a path"),
        ("file:////double", "empty path segment"),
        ("s3://bucket/" + "k" * 1025, "longer than 1024 bytes"),
    ],
)
def test_invalid_uris_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(StorageError) as caught:
        parse_uri(text)
    err = caught.value
    assert err.reason == "InvalidUri"
    assert err.exit_code == exitcodes.INVALID_INPUT
    assert says in str(err)
    assert "s3://bucket/key" in str(err)  # says what is allowed


def test_credentials_in_a_uri_are_refused_without_being_echoed() -> None:
    with pytest.raises(StorageError) as caught:
        parse_uri("s3://AKIAEXAMPLE:topsecretvalue@bucket/key")
    assert caught.value.reason == "InvalidUri"
    assert "credentialsSecret" in str(caught.value)
    assert "topsecretvalue" not in str(caught.value)
    assert "AKIAEXAMPLE" not in str(caught.value)


@pytest.mark.parametrize("text", ["http://example.com/data.jsonl", "pvc://claim/path"])
def test_later_schemes_are_not_supported_yet(text: str) -> None:
    with pytest.raises(StorageError) as caught:
        parse_uri(text)
    scheme = text.split(":")[0]
    assert caught.value.reason == "NotSupported"
    assert caught.value.exit_code == exitcodes.INVALID_INPUT
    assert f"{scheme}:// URIs are not supported yet by tuneforge fetch" in str(caught.value)


def test_join_name_and_parent() -> None:
    root = parse_uri("s3://bucket/runs/")
    assert str(root.join("adapter", "config.json")) == "s3://bucket/runs/adapter/config.json"
    assert str(root.join("a/b.txt")) == "s3://bucket/runs/a/b.txt"
    assert str(parse_uri("gs://bucket").join("x")) == "gs://bucket/x"
    assert str(parse_uri("file:///").join("tmp")) == "file:///tmp"
    assert parse_uri("s3://bucket/runs/a/b.txt").name == "b.txt"
    assert str(parse_uri("s3://bucket/runs/a/b.txt").parent) == "s3://bucket/runs/a"
    assert str(parse_uri("s3://bucket/top.txt").parent) == "s3://bucket"
    assert str(parse_uri("file:///top.txt").parent) == "file:///"
    with pytest.raises(StorageError, match="segment '..' is not allowed"):
        root.join("../escape")


def test_fs_paths() -> None:
    assert parse_uri("s3://bucket/a/b/").fs_path == "bucket/a/b"
    assert parse_uri("gs://bucket").fs_path == "bucket"
    assert parse_uri("file:///abs/x").fs_path == "/abs/x"


def test_relative_file_uris_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_uri("file://data/train.jsonl").local_path == tmp_path / "data" / "train.jsonl"
    assert parse_uri("file://./data").local_path == tmp_path / "data"
    assert parse_uri("file://../x").local_path == tmp_path.parent / "x"
    assert parse_uri("file:///etc/hosts").local_path == Path("/etc/hosts")
