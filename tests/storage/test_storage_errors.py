"""Refused credentials, unreachable endpoints, and how library errors become StorageErrors."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from gcsfs.retry import HttpError
from google.auth.exceptions import DefaultCredentialsError
from support.storage_fixtures import GcsServer, S3Server

from tuneforge import exitcodes
from tuneforge.storage import StorageError, exists, fetch, upload_file, write_text
from tuneforge.storage.translate import classify

SetEnv = Callable[[Mapping[str, str]], None]


@pytest.mark.parametrize(
    "override",
    [{"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"}, {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000"}],
    ids=["SignatureDoesNotMatch", "InvalidAccessKeyId"],
)
def test_refused_s3_credentials_are_access_denied(
    s3_server: S3Server, storage_env: SetEnv, tmp_path: Path, override: dict[str, str]
) -> None:
    bucket = s3_server.make_bucket()
    s3_server.put_object(bucket, "model/config.json", b"{}")
    env = {**s3_server.env, **override}
    storage_env(env)
    with pytest.raises(StorageError) as caught:
        fetch(f"s3://{bucket}/model", tmp_path / "dest")
    err = caught.value
    assert err.reason == "AccessDenied" and err.exit_code == exitcodes.ACCESS_DENIED
    assert f"s3://{bucket}/model" in str(err)
    assert "spec.storage.s3.credentialsSecret" in str(err)
    assert env["AWS_SECRET_ACCESS_KEY"] not in str(err)
    assert s3_server.secret_key not in str(err)
    assert not (tmp_path / "dest").exists()


def test_refused_s3_credentials_fail_writes_too(
    s3_server: S3Server, storage_env: SetEnv, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    storage_env({**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"})
    local = tmp_path / "a.txt"
    local.write_text("a")
    with pytest.raises(StorageError) as caught:
        upload_file(local, f"s3://{bucket}/a.txt")
    assert caught.value.reason == "AccessDenied"
    with pytest.raises(StorageError) as caught:
        write_text(f"s3://{bucket}/b.txt", "b")
    assert caught.value.reason == "AccessDenied"
    with pytest.raises(StorageError) as caught:
        exists(f"s3://{bucket}/a.txt")
    assert caught.value.reason == "AccessDenied"
    assert s3_server.list_keys(bucket) == []


def test_unreachable_s3_endpoint_fails_within_seconds(
    s3_server: S3Server, storage_env: SetEnv, closed_port: int, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    storage_env({**s3_server.env, "AWS_ENDPOINT_URL": endpoint})
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        fetch("s3://some-bucket/model", tmp_path / "dest")
    assert time.monotonic() - started < 5
    err = caught.value
    assert err.reason == "Unreachable" and err.exit_code == exitcodes.FAILED
    assert endpoint in str(err) and "spec.storage.s3.endpoint" in str(err)


def test_unreachable_gcs_endpoint_fails_within_seconds(
    gcs_server: GcsServer, storage_env: SetEnv, closed_port: int, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    storage_env({**gcs_server.env, "STORAGE_EMULATOR_HOST": endpoint})
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        exists("gs://some-bucket/model")
    assert time.monotonic() - started < 5
    assert caught.value.reason == "Unreachable"
    assert endpoint in str(caught.value) and "spec.storage.gcs.endpoint" in str(caught.value)


def test_an_emulator_host_without_scheme_is_accepted(
    gcs_server: GcsServer, storage_env: SetEnv, tmp_path: Path
) -> None:
    bucket = gcs_server.make_bucket()
    gcs_server.put_object(bucket, "x.txt", b"x")
    storage_env({**gcs_server.env, "STORAGE_EMULATOR_HOST": gcs_server.endpoint.removeprefix("http://")})
    assert exists(f"gs://{bucket}/x.txt")


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (FileNotFoundError("x"), "NotFound"),
        (PermissionError("x"), "AccessDenied"),
        (ConnectionRefusedError(111, "refused"), "Unreachable"),
        (TimeoutError(), "Unreachable"),
        (OSError(28, "No space left on device"), "TransferFailed"),
        (NotADirectoryError(20, "Not a directory"), "InvalidUri"),
        (_client_error("NoSuchBucket"), "NotFound"),
        (_client_error("NoSuchKey"), "NotFound"),
        (_client_error("AccessDenied"), "AccessDenied"),
        (_client_error("InvalidAccessKeyId"), "AccessDenied"),
        (_client_error("SignatureDoesNotMatch"), "AccessDenied"),
        (_client_error("InternalError"), "TransferFailed"),
        (EndpointConnectionError(endpoint_url="http://x"), "Unreachable"),
        (NoCredentialsError(), "AccessDenied"),
        (DefaultCredentialsError("no ADC"), "AccessDenied"),
        (HttpError({"code": 401, "message": "Invalid Credentials"}), "AccessDenied"),
        (HttpError({"code": 403, "message": "forbidden"}), "AccessDenied"),
        (HttpError({"code": 404, "message": "gone"}), "NotFound"),
        (HttpError({"code": 503, "message": "busy"}), "Unreachable"),
        (HttpError({"code": 400, "message": "bad"}), "TransferFailed"),
        (OSError("Forbidden: b/bucket/o\nno access"), "AccessDenied"),
        (RuntimeError("surprise"), "TransferFailed"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_library_errors_map_to_reasons(exc: BaseException, reason: str) -> None:
    assert classify(exc) == reason


def test_secrets_in_the_environment_never_reach_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-abc")
    err = StorageError(
        "TransferFailed",
        "failed s3cr3t-value-xyz session-token-abc https://user:pw@host/x?X-Amz-Signature=abcdef&y=1",
    )
    text = str(err)
    for secret in ("s3cr3t-value-xyz", "session-token-abc", "user:pw", "abcdef"):
        assert secret not in text
    assert "X-Amz-Signature=***" in text and "y=1" in text


def test_a_missing_gcs_key_file_is_access_denied(
    storage_env: SetEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)  # real GCS: credentials are needed
    storage_env({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing-key.json")})
    with pytest.raises(StorageError) as caught:
        exists("gs://bucket/model")
    assert caught.value.reason == "AccessDenied"
    assert "missing-key.json, which is not a file" in str(caught.value)
    assert "spec.storage.gcs.credentialsSecret" in str(caught.value)


@pytest.mark.parametrize(
    "name", ["AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "WANDB_API_KEY", "HF_TOKEN_DESTINATION_3"]
)
def test_credentials_in_the_environment_never_reach_a_message(monkeypatch, name):
    from tuneforge.storage.errors import redact

    monkeypatch.setenv(name, "hf_s3cr3tvalue")
    assert (
        redact("401 for token hf_s3cr3tvalue at https://user:pw@hub/x")
        == "401 for token *** at https://***@hub/x"
    )
    assert "hf_s3cr3tvalue" not in str(StorageError("AccessDenied", "the Hub said no to hf_s3cr3tvalue"))
