"""``tuneforge fetch SRC DEST``: what the Job's initContainers run to fill the workspace."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import Counter
from pathlib import Path

from tuneforge import exitcodes
from tuneforge.storage.download import FetchedFile, FetchResult, fetch
from tuneforge.storage.errors import StorageError
from tuneforge.termination import write_termination_message

_CHECK_NAMES = {
    "sha256": "sha256 (from _MANIFEST.json, the Hub or the server)",
    "sha1": "the Hub's git blob id",
    "md5": "the store's md5",
    "size": "size only",
    "none": "nothing (the server gave no size or checksum)",
}

DESCRIPTION = """\
Copy a model or a dataset from SRC to the local folder DEST.

SRC is one object (it lands at DEST/<name>) or a folder (its tree lands
under DEST, relative layout kept):
  file:///abs/path   file://relative/path   s3://bucket/key   gs://bucket/key
  hf://org/name[/path]   hf://datasets/org/name[/path]   (at --revision)
  https://host/path/file

Each file's size is checked; when SRC has a _MANIFEST.json (written by
Tuneforge's uploads) each file's sha256 is checked against it; hf:// files
against the Hub's sha256 (LFS) or git blob id; https:// files against the
server's Content-Length and digest headers. Files appear in DEST only once
all of them were downloaded and checked.

With --cache-dir, DIR keeps one complete copy per source and version (the
hf:// commit, or the listing of a store folder) for every job that shares
it; DEST gets hard links to it (copies across filesystems).
"""

EPILOG = """\
environment:
  AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN           S3 endpoint, region and credentials
  STORAGE_EMULATOR_HOST       a GCS emulator (anonymous access)
  GOOGLE_APPLICATION_CREDENTIALS
                              a GCS service-account key file
  HF_TOKEN                    a Hugging Face token (private or gated repos)
  HF_ENDPOINT                 a Hub mirror (default https://huggingface.co)
  SSL_CERT_FILE               a CA bundle for https:// sources
  TUNEFORGE_TERMINATION_MESSAGE_PATH
                              where to write {"reason", "message"} on failure

exit codes: 0 ok, 1 retryable failure (unreachable, corrupt), 3 invalid URI or revision,
4 not found, 5 access denied
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuneforge fetch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="URI of an object or folder")
    parser.add_argument("dest", metavar="DEST", type=Path, help="local folder to fill (created if missing)")
    parser.add_argument(
        "--revision", help="branch, tag or commit sha of an hf:// source (default: the main branch)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="shared model cache folder (e.g. a ReadWriteMany volume)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    return parser


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _print_file(fetched: FetchedFile) -> None:
    print(f"  {fetched.rel}  {human_bytes(fetched.size)}  ({fetched.check} ok)", flush=True)


def _fetch(args: argparse.Namespace) -> FetchResult:
    on_file = None if args.quiet else _print_file
    if args.cache_dir is None:
        return fetch(args.src, args.dest, revision=args.revision, on_file=on_file)
    from tuneforge.storage.cache import fetch_cached

    cached = fetch_cached(
        args.src,
        args.dest,
        cache_dir=args.cache_dir,
        revision=args.revision,
        on_file=on_file,
        log=lambda line: print(line, flush=True),
    )
    if not cached.cached:
        print(f"{args.src} has no stable version to cache by; fetched it directly", flush=True)
    else:
        how = "hard links" if cached.linked else "copies"
        state = "found in" if cached.hit else "added to"
        print(f"{state} the model cache at {cached.entry}; {how} in {args.dest}", flush=True)
    return cached.result


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # huggingface_hub's progress bars would fill the pod log; each file gets one line instead.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        result = _fetch(args)
    except StorageError as err:
        print(f"tuneforge fetch: {err.reason}: {err}", file=sys.stderr)
        write_termination_message(err.reason, str(err))
        return err.exit_code
    except Exception as exc:  # a bug of ours: still tell the operator why the pod failed
        traceback.print_exc()
        write_termination_message("FetchFailed", f"tuneforge fetch {args.src}: {type(exc).__name__}: {exc}")
        return exitcodes.FAILED
    counts = Counter(f.check for f in result.files)
    checked = ", ".join(f"{n} by {_CHECK_NAMES[kind]}" for kind, n in sorted(counts.items()))
    print(
        f"fetched {len(result.files)} file(s), {human_bytes(result.bytes)} in {result.seconds:.2f} s "
        f"({result.mb_per_s:.1f} MB/s) from {result.source} to {result.dest}; checked {checked}",
        flush=True,
    )
    return exitcodes.OK
