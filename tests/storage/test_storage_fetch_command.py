"""``tuneforge fetch`` as the initContainers run it: a real subprocess, its output, exit code
and termination message."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.storage_fixtures import GcsServer, S3Server

from tuneforge import exitcodes
from tuneforge.termination import ENV as TERMINATION_ENV

TUNEFORGE = Path(sys.executable).parent / "tuneforge"
BuildEnv = Callable[..., dict[str, str]]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TUNEFORGE), "fetch", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def bucket_with_model(s3_server: S3Server) -> str:
    bucket = s3_server.make_bucket()
    s3_server.put_object(bucket, "models/tiny/config.json", b'{"hidden_size": 64}')
    s3_server.put_object(bucket, "models/tiny/tokenizer/tokenizer.model", b"\x01" * 5000)
    return bucket


def test_fetch_command_copies_a_folder_and_reports_each_file(
    s3_server: S3Server, bucket_with_model: str, subprocess_env: BuildEnv, tmp_path: Path
) -> None:
    termination = tmp_path / "termination-log"
    env = subprocess_env(s3_server.env, **{TERMINATION_ENV: str(termination)})
    done = _run([f"s3://{bucket_with_model}/models/tiny", str(tmp_path / "model")], env)
    assert done.returncode == exitcodes.OK, done.stderr
    assert (tmp_path / "model" / "tokenizer" / "tokenizer.model").read_bytes() == b"\x01" * 5000
    lines = done.stdout.splitlines()
    assert any("config.json" in line and "19 B" in line for line in lines)
    assert any("tokenizer/tokenizer.model" in line and "5.0 KB" in line for line in lines)
    assert lines[-1].startswith("fetched 2 file(s), 5.0 KB in ")
    assert "MB/s" in lines[-1]
    assert not termination.exists()  # written only when something failed
    for secret in (s3_server.secret_key, s3_server.access_key):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("case", "reason", "code"),
    [
        ("missing", "NotFound", exitcodes.NOT_FOUND),
        ("bad-secret", "AccessDenied", exitcodes.ACCESS_DENIED),
        ("bad-uri", "InvalidUri", exitcodes.INVALID_INPUT),
    ],
)
def test_fetch_command_failures_exit_with_their_code_and_leave_a_termination_message(
    s3_server: S3Server,
    bucket_with_model: str,
    subprocess_env: BuildEnv,
    tmp_path: Path,
    case: str,
    reason: str,
    code: int,
) -> None:
    termination = tmp_path / "termination-log"
    wrong_secret = "not-the-secret-0123456789abcdef"
    src = {
        "missing": f"s3://{bucket_with_model}/models/absent",
        "bad-secret": f"s3://{bucket_with_model}/models/tiny",
        "bad-uri": "s3://Bad_Bucket/models",
    }[case]
    overrides = {"AWS_SECRET_ACCESS_KEY": wrong_secret} if case == "bad-secret" else {}
    env = subprocess_env(s3_server.env, overrides, **{TERMINATION_ENV: str(termination)})
    done = _run([src, str(tmp_path / "model")], env)
    assert done.returncode == code, done.stderr
    message = json.loads(termination.read_text())
    assert message["reason"] == reason
    assert src in message["message"]
    assert done.stderr.startswith(f"tuneforge fetch: {reason}: ")
    assert len(termination.read_bytes()) <= 4096
    everything = done.stdout + done.stderr + termination.read_text()
    for secret in (s3_server.secret_key, wrong_secret):
        assert secret not in everything
    assert not (tmp_path / "model").exists() or list((tmp_path / "model").rglob("*")) == []


def test_fetch_command_help_and_usage_errors(subprocess_env: BuildEnv) -> None:
    shown = _run(["--help"], subprocess_env())
    assert shown.returncode == 0
    assert "usage: tuneforge fetch" in shown.stdout and "SRC" in shown.stdout and "DEST" in shown.stdout
    wrong = _run(["only-one-arg"], subprocess_env())
    assert wrong.returncode == exitcodes.USAGE
    assert "the following arguments are required: DEST" in wrong.stderr


def test_fetch_command_against_a_gcs_emulator_is_quiet(
    gcs_server: GcsServer, subprocess_env: BuildEnv, tmp_path: Path
) -> None:
    bucket = gcs_server.make_bucket()
    gcs_server.put_object(bucket, "data/train.jsonl", b'{"text": "hello"}\n')
    # Only the emulator address, as the Job gives it: fetch itself must turn
    # gcsfs's bucket-type probes off (they warn dozens of times otherwise).
    env = subprocess_env(STORAGE_EMULATOR_HOST=gcs_server.endpoint)
    for name in ("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "GOOGLE_CLOUD_PROJECT"):
        env.pop(name, None)
    done = _run([f"gs://{bucket}/data", str(tmp_path / "dataset")], env)
    assert done.returncode == exitcodes.OK, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "dataset" / "train.jsonl").read_bytes() == b'{"text": "hello"}\n'
    assert "checked 1 by the store's md5" in done.stdout
