"""The model card (README.md) of a Hub export. Pure: facts in, Markdown out.

The front matter is the Hub's model-card metadata: ``base_model`` and
``datasets`` only when they are Hub repositories (a bucket path means
nothing there, and may be private), ``license`` from the base model's own
card, ``library_name`` (peft for an adapter, transformers for a merged
model, gguf for GGUF files), ``tags`` and ``pipeline_tag``. The body says
what the artifact is, how it was trained (method, hyperparameters, metrics,
read from the FineTuneJob's run record when the adapter came from
Tuneforge) and how it was built (digest, llama.cpp version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

_FRONT_MATTER: Final = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)
LICENSE_KEYS: Final = ("license", "license_name", "license_link")
FORMAT_TEXT: Final = {
    "adapter": "a LoRA adapter",
    "merged": "the base model with a LoRA adapter merged in",
    "gguf": "a GGUF file (for llama.cpp and compatible runtimes) of the base model with a LoRA merged in",
    "adapter-gguf": "a LoRA adapter as GGUF (for llama.cpp's --lora), to apply to a GGUF of the base model",
}
LIBRARY: Final = {"adapter": "peft", "merged": "transformers", "gguf": "gguf", "adapter-gguf": "gguf"}


@dataclass(frozen=True)
class Training:
    """What the FineTuneJob's run record tells about the adapter."""

    job: str | None = None
    method: str | None = None
    trainer: str | None = None
    dataset: str | None = None
    dataset_format: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CardFacts:
    repo: str
    format: str
    base_model: str
    """The base model's URI."""
    quantization: str | None = None
    file_name: str | None = None
    """The GGUF file at the top of the repository."""
    license: dict[str, str] = field(default_factory=dict)
    training: Training = field(default_factory=Training)
    digest: str | None = None
    llama_cpp_version: str | None = None
    tuneforge_version: str | None = None


def front_matter(readme: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a model card ({} when there is none or it is not YAML)."""
    match = _FRONT_MATTER.match(readme)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def license_of(readme: str | None, config: dict[str, Any] | None = None) -> dict[str, str]:
    """The base model's licence: its card's license / license_name / license_link, else config.json's."""
    meta = front_matter(readme or "")
    found = {key: str(meta[key]) for key in LICENSE_KEYS if isinstance(meta.get(key), str | int | float)}
    if not found and config and isinstance(config.get("license"), str):
        found["license"] = config["license"]
    return found


def training_from_record(config: dict[str, Any] | None, status: dict[str, Any] | None) -> Training:
    """Training facts from a run record's config.json (the FineTuneJob) and status.json."""
    spec = (config or {}).get("spec") or {}
    dataset = spec.get("dataset") or {}
    metrics = (status or {}).get("metrics") or {}
    return Training(
        job=((config or {}).get("metadata") or {}).get("name"),
        method=spec.get("method"),
        trainer=spec.get("trainer"),
        dataset=dataset.get("source"),
        dataset_format=dataset.get("format"),
        hyperparameters=dict(spec.get("hyperparameters") or {}),
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
    )


def hub_id(uri: str | None, *, datasets: bool = False) -> str | None:
    """``org/name`` of an hf:// URI of a model (or dataset) repository, else None."""
    if not uri or not uri.startswith("hf://"):
        return None
    rest = uri.removeprefix("hf://")
    if datasets:
        rest = rest.removeprefix("datasets/") if rest.startswith("datasets/") else ""
    elif rest.startswith("datasets/"):
        return None
    parts = rest.removeprefix("models/").split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 else None


def _display(uri: str | None) -> str:
    """A source as the card names it: a Hub id, else its last path segment only (buckets may be private)."""
    if not uri:
        return "unknown"
    repo = hub_id(uri) or hub_id(uri, datasets=True)
    if repo:
        return f"[{repo}](https://huggingface.co/{'datasets/' if '/datasets/' in uri else ''}{repo})"
    return f"`{uri.rstrip('/').rpartition('/')[2]}` (from a private store)"


def metadata(facts: CardFacts) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    meta.update(facts.license)
    base = hub_id(facts.base_model)
    if base:
        meta["base_model"] = base
    dataset = hub_id(facts.training.dataset, datasets=True)
    if dataset:
        meta["datasets"] = [dataset]
    meta["library_name"] = LIBRARY[facts.format]
    tags = ["tuneforge", "lora" if facts.format.startswith("adapter") else "merged-lora"]
    if facts.format in ("gguf", "adapter-gguf"):
        tags.append("gguf")
    if facts.training.trainer:
        tags.append(str(facts.training.trainer))
    meta["tags"] = tags
    meta["pipeline_tag"] = "text-generation"
    return meta


def render_card(facts: CardFacts) -> str:
    """README.md with front matter."""
    head = yaml.safe_dump(metadata(facts), sort_keys=False, allow_unicode=True).strip()
    what = FORMAT_TEXT[facts.format]
    if facts.quantization:
        what += f", quantized as {facts.quantization}"
    lines = [f"---\n{head}\n---", "", f"# {facts.repo.split('/')[-1]}", ""]
    lines += [f"This repository holds {what}, fine-tuned and exported with Tuneforge.", ""]
    lines += ["## Training", "", f"- Base model: {_display(facts.base_model)}"]
    training = facts.training
    if training.dataset:
        fmt = f" ({training.dataset_format})" if training.dataset_format else ""
        lines.append(f"- Dataset: {_display(training.dataset)}{fmt}")
    if training.method:
        by = f" with the {training.trainer} trainer" if training.trainer else ""
        lines.append(f"- Method: {training.method}{by}")
    if facts.license:
        name = facts.license.get("license_name") or facts.license.get("license")
        lines.append(f"- License: {name} (the base model's)")
    lines.append("")
    lines += _table("Hyperparameters", training.hyperparameters)
    lines += _table("Metrics", training.metrics)
    lines += _usage(facts)
    lines += ["## Provenance", ""]
    if facts.digest:
        lines.append(f"- Artifact digest: `{facts.digest}`")
    if facts.llama_cpp_version:
        lines.append(f"- Converted with {facts.llama_cpp_version}")
    if facts.tuneforge_version:
        lines.append(f"- Built by Tuneforge {facts.tuneforge_version}")
    return "\n".join(lines).rstrip() + "\n"


def _table(title: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return []
    rows = [f"| {key} | {_cell(value)} |" for key, value in sorted(values.items())]
    return [f"## {title}", "", "| name | value |", "|---|---|", *rows, ""]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")


def _usage(facts: CardFacts) -> list[str]:
    base = hub_id(facts.base_model) or "<the base model>"
    if facts.format == "adapter":
        code = (
            "from peft import AutoPeftModelForCausalLM\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{facts.repo}")'
        )
        return ["## Use", "", f"Base model: `{base}`.", "", "```python", code, "```", ""]
    if facts.format == "merged":
        code = (
            "from transformers import AutoModelForCausalLM\n"
            f'model = AutoModelForCausalLM.from_pretrained("{facts.repo}")'
        )
        return ["## Use", "", "```python", code, "```", ""]
    if facts.format == "gguf":
        return ["## Use", "", "```sh", f"llama-cli -m {facts.file_name} -p 'Hello'", "```", ""]
    return [
        "## Use",
        "",
        f"Apply it to a GGUF of `{base}`:",
        "",
        "```sh",
        f"llama-cli -m base-model.gguf --lora {facts.file_name} -p 'Hello'",
        "```",
        "",
    ]
