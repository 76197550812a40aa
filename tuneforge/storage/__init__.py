"""One URI layer for every store Tuneforge reads and writes: file://, s3:// and gs://.

Sources may also be hf:// (Hub models and datasets, at a revision) and
https:// (dataset files); :func:`publish_to_hub` publishes to the Hub.

Built on fsspec (with s3fs and gcsfs): one code path and one test suite for
every scheme, streaming reads and writes instead of whole files in memory,
and the same filesystem library the Hugging Face stack (datasets,
huggingface_hub) already uses, so a URI means the same thing to us and to it.

Settings come only from the environment, as the Job sets it:
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``), ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` for S3; ``STORAGE_EMULATOR_HOST`` (anonymous access)
or ``GOOGLE_APPLICATION_CREDENTIALS`` (else Application Default Credentials)
for GCS.

Every failure is a :class:`StorageError` whose ``reason`` is one word and
whose message names the URI (never a credential) and what to do.

Writes never leave a half-written object at its final name. A folder
written by :func:`upload_tree` is complete only once its ``_MANIFEST.json``
(written last) is there: readers check :func:`is_complete`, and
:func:`fetch` verifies each file's size and sha256 against the manifest.
"""

from tuneforge.storage.download import FetchedFile, FetchResult, fetch
from tuneforge.storage.errors import StorageError
from tuneforge.storage.hub_publish import HubPublishResult, PublishedFile, hub_file_sha256, publish_to_hub
from tuneforge.storage.manifest import MANIFEST_NAME, Manifest, ManifestEntry
from tuneforge.storage.objects import exists, is_complete, read_text, upload_file, write_text
from tuneforge.storage.upload import UploadResult, upload_tree
from tuneforge.storage.uri import StorageUri, parse_uri

__all__ = [
    "MANIFEST_NAME",
    "FetchResult",
    "FetchedFile",
    "HubPublishResult",
    "Manifest",
    "ManifestEntry",
    "PublishedFile",
    "StorageError",
    "StorageUri",
    "UploadResult",
    "exists",
    "fetch",
    "hub_file_sha256",
    "is_complete",
    "parse_uri",
    "publish_to_hub",
    "read_text",
    "upload_file",
    "upload_tree",
    "write_text",
]
