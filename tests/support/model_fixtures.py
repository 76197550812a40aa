"""Fixtures: the tiny offline model (tuneforge.tinymodel) and the tiny VLM (tuneforge.tinyvlm), built once.

``tiny_model`` is a session-scoped Path to a folder that
``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained``
load. Treat it as read-only: copy it first if a test must change it.

The build is cached under ``<repo>/.cache/tiny-model-test/<key>``, the key a
hash of the builder's source, the sample data and the versions of the
libraries that shape the files, so a change to any of them builds afresh.
Builds go to a temporary folder renamed into place, so concurrent sessions
never see half a model. ``TUNEFORGE_TINY_MODEL_CACHE=0`` builds into the
session's temporary folder instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from tuneforge import tinymodel

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "tiny-model-test"
SEED = 0
_LIBRARIES = ("torch", "transformers", "tokenizers", "sentencepiece", "safetensors")


def tiny_model_key() -> str:
    digest = hashlib.sha256()
    digest.update(Path(tinymodel.__file__).read_bytes())
    for path in sorted(tinymodel.default_data_dir().glob("*.jsonl")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for name in _LIBRARIES:
        digest.update(f"{name}={metadata.version(name)}".encode())
    digest.update(f"seed={SEED}".encode())
    return digest.hexdigest()[:16]


def _cached_build(cache: Path, key: str, build: Callable[[Path], object]) -> Path:
    """``cache/key``, built by ``build(folder)`` into a scratch folder and renamed into place if missing."""
    target = cache / key
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        build(scratch / "model")
        try:
            os.replace(scratch / "model", target)
        except OSError:
            # Another session renamed its build into place first; theirs is as good.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def cached_tiny_model(cache: Path = CACHE) -> Path:
    """The cached build for the current key, building it if needed."""
    return _cached_build(
        cache, tiny_model_key(), lambda folder: tinymodel.build_tiny_model(folder, seed=SEED)
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny Llama model and its SentencePiece tokenizer (read-only)."""
    if os.environ.get("TUNEFORGE_TINY_MODEL_CACHE", "1") == "0":
        return tinymodel.build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=SEED)
    return cached_tiny_model()


# --- the tiny vision-language model (tuneforge.tinyvlm) ---------------------------------

VLM_CACHE = REPO / ".cache" / "tiny-vlm-test"


def tiny_vlm_key() -> str:
    """Changes with the VLM builder, and with everything the tiny model's key covers."""
    from tuneforge import tinyvlm

    digest = hashlib.sha256(tiny_model_key().encode())
    digest.update(Path(tinyvlm.__file__).read_bytes())
    return digest.hexdigest()[:16]


def cached_tiny_vlm(cache: Path = VLM_CACHE) -> Path:
    """The cached tiny VLM build for the current key, building it if needed (same scheme as the model)."""
    from tuneforge import tinyvlm

    return _cached_build(cache, tiny_vlm_key(), lambda folder: tinyvlm.build_tiny_vlm(folder, seed=SEED))


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny LLaVA (CLIP tower + tiny Llama) and its processor (read-only).

    Loads with ``AutoProcessor`` / ``AutoModelForImageTextToText``; 32x32 images, 16 image tokens each.
    """
    if os.environ.get("TUNEFORGE_TINY_MODEL_CACHE", "1") == "0":
        from tuneforge import tinyvlm

        return tinyvlm.build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm") / "model", seed=SEED)
    return cached_tiny_vlm()
