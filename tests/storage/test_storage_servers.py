"""The test servers themselves: what they hand to others, and how they fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import support.s3server
from support.storage_fixtures import GcsServer, S3Server, applied_env


def test_s3_server_env_reaches_it_from_a_plain_client(s3_server: S3Server) -> None:
    assert s3_server.env["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    bucket = s3_server.make_bucket()
    assert s3_server.make_bucket(f"{bucket}-named") == f"{bucket}-named"
    s3_server.put_object(bucket, "k/v.txt", b"v")
    assert s3_server.get_object(bucket, "k/v.txt") == b"v"
    assert s3_server.list_keys(bucket) == ["k/v.txt"]


def test_gcs_server_buckets_and_objects(gcs_server: GcsServer) -> None:
    assert gcs_server.env["STORAGE_EMULATOR_HOST"] == gcs_server.endpoint
    assert gcs_server.env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    bucket = gcs_server.make_bucket()
    gcs_server.put_object(bucket, "a/empty", b"")
    gcs_server.put_object(bucket, "a/b", b"\x00\r\n\xff")
    assert gcs_server.get_object(bucket, "a/b") == b"\x00\r\n\xff"
    assert gcs_server.list_keys(bucket, "a/") == ["a/b", "a/empty"]


def test_a_server_that_cannot_start_shows_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'weed: cannot bind, giving up' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(support.s3server, "WEED", fake)
    with pytest.raises(RuntimeError, match="(?s)SeaweedFS did not start; its log:.*cannot bind, giving up"):
        support.s3server.start_s3_server(tmp_path / "work", attempts=1, timeout_s=5)


def test_applied_env_restores_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_TEST_KEEP", "before")
    monkeypatch.delenv("TF_TEST_NEW", raising=False)
    with applied_env({"TF_TEST_KEEP": "during", "TF_TEST_NEW": "x"}):
        assert (os.environ["TF_TEST_KEEP"], os.environ["TF_TEST_NEW"]) == ("during", "x")
    assert os.environ["TF_TEST_KEEP"] == "before" and "TF_TEST_NEW" not in os.environ
