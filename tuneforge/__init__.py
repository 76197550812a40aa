"""Tuneforge: a Kubernetes operator that fine-tunes open LLMs.

The import root maps the repository's top-level folders: ``tuneforge.api``
(api/), ``tuneforge.operator`` (operator/), ``tuneforge.trainer`` (trainer/),
``tuneforge.exporter`` (exporter/). This folder itself holds what they share:
storage URIs and fetching, the status reporter, the pod runner and the CLI.
"""

__version__ = "0.1.0"
