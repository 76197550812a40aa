"""https:// dataset files: one streamed download over real TLS (the Hub double's TLS listener), checked."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hubserver import HubServer

from tuneforge import exitcodes
from tuneforge.storage import StorageError, fetch

ROWS = b'{"instruction": "Say hi", "output": "hi"}\n' * 50


@pytest.fixture(autouse=True)
def _double_served_everything(hub_server: HubServer) -> Iterator[None]:
    yield
    assert hub_server.unhandled == [] and hub_server.internal_errors == []


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_a_hub_resolve_url_is_fetched_and_lfs_files_are_checked_by_sha256(
    hub_env: dict[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    repo = hub_server.new_repo_id("web-data")
    parquet = os.urandom(30_000)  # LFS: the Hub redirects it, with X-Linked-Etag (its sha256)
    hub_server.seed(repo, {"train.jsonl": ROWS, "train.parquet": parquet}, repo_type="dataset")
    base = f"{hub_server.https_endpoint}/datasets/{repo}/resolve/main"

    text = fetch(f"{base}/train.jsonl", tmp_path / "a")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == ROWS
    assert [(f.rel, f.check) for f in text.files] == [("train.jsonl", "size")]

    binary = fetch(f"{base}/train.parquet", tmp_path / "b")
    assert (tmp_path / "b" / "train.parquet").read_bytes() == parquet
    assert binary.files[0].check == "sha256"
    assert binary.files[0].sha256 == hashlib.sha256(parquet).hexdigest()


@pytest.mark.parametrize(
    ("header", "value", "check"),
    [
        ("Repr-Digest", "sha-256=:{sha256}:", "sha256"),
        ("Digest", "SHA-256={sha256}", "sha256"),
        ("Content-MD5", "{md5}", "md5"),
        ("x-goog-hash", "crc32c=AAAAAA==,md5={md5}", "md5"),
    ],
)
def test_the_servers_digest_headers_are_checked(
    hub_env: dict[str, str], hub_server: HubServer, header: str, value: str, check: str, tmp_path: Path
) -> None:
    sums = {"sha256": _b64(hashlib.sha256(ROWS).digest()), "md5": _b64(hashlib.md5(ROWS).digest())}
    url = hub_server.serve_static(
        f"digest-{check}-{header}.jsonl", ROWS, headers={header: value.format(**sums)}
    )
    result = fetch(url, tmp_path / "dest")
    assert result.files[0].check == check


def test_a_file_that_does_not_match_its_digest_never_reaches_dest(
    hub_env: dict[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    wrong = _b64(hashlib.sha256(b"something else").digest())
    url = hub_server.serve_static("tampered.jsonl", ROWS, headers={"Repr-Digest": f"sha-256=:{wrong}:"})
    with pytest.raises(StorageError) as caught:
        fetch(url, tmp_path / "dest")
    assert caught.value.reason == "Corrupt" and "does not match the server's" in str(caught.value)
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (404, "NotFound", exitcodes.NOT_FOUND),
        (403, "AccessDenied", exitcodes.ACCESS_DENIED),
        (503, "Unreachable", exitcodes.FAILED),
    ],
)
def test_http_errors_map_to_reasons(
    hub_env: dict[str, str], hub_server: HubServer, status: int, reason: str, code: int, tmp_path: Path
) -> None:
    url = hub_server.serve_static(f"status-{status}.jsonl", b"nope", status=status)
    with pytest.raises(StorageError) as caught:
        fetch(url, tmp_path / "dest")
    assert (caught.value.reason, caught.value.exit_code) == (reason, code)
    assert f"the server answered {status}" in str(caught.value)


def test_a_redirect_to_plain_http_is_refused(
    hub_env: dict[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    plain = hub_server.serve_static("plain.jsonl", ROWS).replace(
        hub_server.https_endpoint, hub_server.endpoint
    )
    url = hub_server.serve_static("downgrade.jsonl", b"", status=302, headers={"Location": plain})
    with pytest.raises(StorageError, match="an unencrypted download is refused") as caught:
        fetch(url, tmp_path / "dest")
    assert caught.value.reason == "InvalidUri"


def test_an_untrusted_certificate_says_how_to_trust_it(
    hub_env: dict[str, str], hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    url = hub_server.serve_static("untrusted.jsonl", ROWS)
    with pytest.raises(StorageError) as caught:
        fetch(url, tmp_path / "dest")
    assert caught.value.reason == "Unreachable"
    assert "not trusted (set SSL_CERT_FILE" in str(caught.value)
