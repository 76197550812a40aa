"""llama.cpp's converters, installed beside the llama-cpp-python they belong to.

llama-cpp-python (pinned in the ``exporter`` extra) brings llama.cpp's
runtime and quantizer as a library, but not its Python converters. Its source
distribution vendors the very llama.cpp commit it was built from, converters
and gguf-py included (PyPI's gguf package lags behind them and fails with
``module 'gguf' has no attribute 'LazyChunkedTensor'``). ``install`` unpacks
exactly those files from the pinned sdist into a folder named after the
version, so the converters, gguf-py, the quantizer and the runtime are
always one llama.cpp commit:

    <root>/llama-cpp-python-0.3.36/
        convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/, gguf-py/,
        models/templates/, LICENSE (MIT), VERSION.json (written last)

``<root>`` is ``$TUNEFORGE_LLAMA_CPP_TOOLS`` or ``<venv>/share/tuneforge/llama.cpp``.
Run ``tuneforge llama-cpp install`` once after installing the exporter extra
(``make venv`` and the image builds do).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Final

from tuneforge.exporter.gguf_errors import GgufError

DISTRIBUTION: Final = "llama-cpp-python"
ROOT_ENV: Final = "TUNEFORGE_LLAMA_CPP_TOOLS"
MARKER: Final = "VERSION.json"

# What the converters need from vendor/llama.cpp/ (paths relative to it).
_FILES: Final = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
_FOLDERS: Final = ("conversion/", "gguf-py/gguf/", "models/templates/")
_EXTRA_FILES: Final = ("gguf-py/LICENSE",)
_COMMIT_FILE: Final = ".git/modules/vendor/llama.cpp/HEAD"


def tools_root() -> Path:
    """Where versioned converter folders live."""
    configured = os.environ.get(ROOT_ENV, "").strip()
    return Path(configured) if configured else Path(sys.prefix) / "share" / "tuneforge" / "llama.cpp"


@cache
def runtime_version() -> str:
    """The installed llama-cpp-python's version; GgufError LlamaCppMissing when it is not installed.

    Looked up once a process (the metadata lookup scans the installed distributions, 0.5-4 ms here,
    and every conversion asks): the binding this process has loaded does not change under it.
    """
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise GgufError(
            "LlamaCppMissing",
            "llama-cpp-python is not installed: install the exporter extra with "
            "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'tuneforge[exporter]', "
            "then run 'tuneforge llama-cpp install'.",
        ) from None


def tools_dir() -> Path:
    """The converters' folder for the installed llama-cpp-python; GgufError LlamaCppMissing if absent."""
    version = runtime_version()
    folder = tools_root() / f"{DISTRIBUTION}-{version}"
    if not (folder / MARKER).is_file():
        raise GgufError(
            "LlamaCppMissing",
            f"llama.cpp's converters for llama-cpp-python {version} are not installed in {folder}: "
            "run 'tuneforge llama-cpp install' (or set $TUNEFORGE_LLAMA_CPP_TOOLS to where they are).",
        )
    return folder


@cache
def _installed_record(folder: Path) -> dict[str, str]:
    record: dict[str, str] = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    return record


def llama_cpp_version() -> str:
    """The llama.cpp that converts, quantizes and verifies: its commit and the binding's version.

    E.g. ``llama.cpp 0c1e570 (llama-cpp-python 0.3.36)``; part of a GGUF artifact's identity.
    """
    record = _installed_record(tools_dir())
    return f"llama.cpp {record['llamaCppCommit'][:7]} (llama-cpp-python {record['llamaCppPython']})"


def install(sdist: Path | None = None, root: Path | None = None) -> Path:
    """Unpacks the converters of the installed llama-cpp-python into ``root``; returns their folder.

    ``sdist`` is llama-cpp-python's source archive of that version; without it,
    pip downloads it (its HTTP cache usually has it from the build). Does nothing
    when the folder is already complete.
    """
    version = runtime_version()
    root = root or tools_root()
    folder = root / f"{DISTRIBUTION}-{version}"
    if (folder / MARKER).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".llama-cpp-", dir=root) as scratch:
        archive = sdist or _download_sdist(version, Path(scratch))
        staging = Path(scratch) / "tools"
        commit = _unpack(archive, staging, version)
        # Bytecode now: a read-only image could not cache it, and every conversion would recompile.
        compileall.compile_dir(staging, quiet=1)
        # Written last: a folder without it is incomplete and is never used.
        record = {"llamaCppPython": version, "llamaCppCommit": commit, "sdist": archive.name}
        (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # an incomplete earlier attempt
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder


def _download_sdist(version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    command += [f"{DISTRIBUTION}=={version}", "--dest", str(into)]
    subprocess.run(command, check=True)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise GgufError(
            "LlamaCppMissing", f"pip download of {DISTRIBUTION}=={version} gave no source archive"
        )
    return found[0]


def _unpack(archive: Path, dest: Path, version: str) -> str:
    """Extracts the converter files from ``archive`` into ``dest``; returns the vendored llama.cpp commit."""
    prefix = PurePosixPath(f"llama_cpp_python-{version}")
    vendor = prefix / "vendor" / "llama.cpp"
    commit = ""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            path = PurePosixPath(member.name)
            if path == prefix / _COMMIT_FILE:
                handle = tar.extractfile(member)
                commit = handle.read().decode().strip() if handle else ""
                continue
            if not (member.isfile() and path.is_relative_to(vendor)):
                continue
            inner = path.relative_to(vendor).as_posix()
            if inner in _FILES + _EXTRA_FILES or (
                inner.startswith(_FOLDERS) and "/tests/" not in inner and "__pycache__" not in inner
            ):
                member.name = inner
                tar.extract(member, dest, filter="data")
    missing = [name for name in _FILES + _FOLDERS if not (dest / name).exists()]
    if missing:
        raise GgufError(
            "LlamaCppMissing", f"{archive.name} lacks {', '.join(missing)} under vendor/llama.cpp"
        )
    return commit or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tuneforge llama-cpp",
        description="Install or show the llama.cpp converters that match the installed llama-cpp-python.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    put = sub.add_parser("install", help="unpack the converters from llama-cpp-python's source archive")
    put.add_argument(
        "--sdist", type=Path, help="the llama_cpp_python-VERSION.tar.gz to use (default: pip download)"
    )
    put.add_argument(
        "--root", type=Path, help=f"where to install (default: ${ROOT_ENV} or <venv>/share/tuneforge)"
    )
    sub.add_parser("version", help="print the llama.cpp version the exporter uses")
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            print(f"llama.cpp converters in {install(args.sdist, args.root)}")
        else:
            print(llama_cpp_version())
    except GgufError as err:
        print(f"tuneforge llama-cpp: {err}", file=sys.stderr)
        return err.exit_code
    return 0
