"""FineTuneJob: one fine-tuning run, from a base model and a dataset to an adapter."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from tuneforge.api.base import (
    API_VERSION,
    ApiModel,
    Conditions,
    DatasetUri,
    DnsLabel,
    ModelUri,
    ObjectMeta,
    OutputUri,
    SecretKeyRef,
)
from tuneforge.api.cel import CelRule
from tuneforge.api.destinations import QUANTIZATION_RULE, Archive, Destination, ExportFormat, Quantization
from tuneforge.api.immutability import immutable_field_rules

KIND: Final = "FineTuneJob"
PLURAL: Final = "finetunejobs"
# The operator names the Job, ServiceAccount, Role, ... after the FineTuneJob
# plus a suffix; those names must fit in 63 characters.
MAX_NAME_LENGTH: Final = 52

ShortStr = Annotated[str, Field(max_length=253)]


class Method(StrEnum):
    lora = "lora"
    qlora = "qlora"
    full = "full"


class TrainerKind(StrEnum):
    sft = "sft"
    dpo = "dpo"


class Modality(StrEnum):
    text = "text"
    vision = "vision"


class Provider(StrEnum):
    huggingface = "huggingface"
    unsloth = "unsloth"


class DatasetFormat(StrEnum):
    auto = "auto"
    alpaca = "alpaca"
    chat = "chat"
    prompt_completion = "prompt-completion"
    preference = "preference"


class Scheduler(StrEnum):
    linear = "linear"
    cosine = "cosine"
    cosine_with_restarts = "cosine_with_restarts"
    polynomial = "polynomial"
    constant = "constant"
    constant_with_warmup = "constant_with_warmup"


class Precision(StrEnum):
    auto = "auto"
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"


# --- spec ------------------------------------------------------------------


class ModelSource(ApiModel):
    """The base model to fine-tune."""

    source: ModelUri
    """Where the base model lives: hf://org/name, gs://bucket/path, s3://bucket/path,
    pvc://claim/path or file:///path (a Hugging Face model directory)."""
    revision: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    """Git revision (branch, tag or commit) for hf:// sources."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding a Hugging Face token, for gated or private hf:// models."""


class DatasetSource(ApiModel):
    """The training data."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!(has(self.evalSource) && has(self.evalSplit))",
            message="spec.dataset: set evalSource or evalSplit, not both",
        ),
    )

    source: DatasetUri
    """The data: file://, s3://, gs://, https:// or hf://. A JSONL, JSON (an array of records) or
    Parquet file, a Hugging Face save_to_disk folder, or a folder of those (read in sorted order)."""
    format: DatasetFormat = DatasetFormat.auto
    """Record layout: alpaca (instruction/input/output), chat (messages),
    prompt-completion, preference (prompt/chosen/rejected, for DPO), or auto to detect it.
    With modality vision: chat records whose user turns hold images, e.g.
    {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
    {"role": "assistant", "content": "A cat."}], "images": ["images/cat.png"]}: each {"type": "image"}
    part takes the next entry of images, a path relative to the dataset folder or a
    data:image/png;base64,... URI (without image parts, the images precede the first user text)."""
    eval_source: DatasetUri | None = None
    """A separate evaluation set, in the same format."""
    eval_split: Annotated[float, Field(gt=0, le=0.5)] | None = None
    """Fraction of the training data held out for evaluation (0 < x <= 0.5), chosen by
    hyperparameters.seed: the same seed holds out the same records."""
    overlength: Literal["truncate", "drop"] = "truncate"
    """Samples longer than hyperparameters.maxSeqLength tokens: truncate (keep their start) or
    drop them. Either way they are counted in status.metrics (truncatedSamples, droppedSamples),
    the log and the final message."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding a Hugging Face token, for private hf:// datasets."""


class Hyperparameters(ApiModel):
    """Optimisation and adapter settings; every field has a sensible default."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!has(self.warmupRatio) || !has(self.warmupSteps)",
            message="spec.hyperparameters: set warmupRatio or warmupSteps, not both",
        ),
    )

    learning_rate: Annotated[float, Field(gt=0, le=1)] = 2e-4
    """Peak learning rate."""
    epochs: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Passes over the training data (fractions allowed); ignored when maxSteps is set."""
    max_steps: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    """Stop after this many optimizer steps, overriding epochs."""
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 4
    """Samples per device per step."""
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=4096)] = 1
    """Steps whose gradients are summed before one optimizer update."""
    max_seq_length: Annotated[int, Field(ge=8, le=1_048_576)] = 1024
    """Longest sample in tokens; longer samples are truncated or dropped (dataset.overlength) and counted."""
    packing: bool = False
    """Pack several samples into each sequence (faster on short samples)."""
    lr_scheduler: Scheduler = Scheduler.linear
    """Learning-rate schedule."""
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    """Fraction of the steps spent warming the learning rate up."""
    warmup_steps: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    """Steps spent warming the learning rate up."""
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0
    """AdamW weight decay."""
    lora_rank: Annotated[int, Field(ge=1, le=1024)] = 16
    """LoRA rank r (lora and qlora)."""
    lora_alpha: Annotated[int, Field(ge=1, le=4096)] = 32
    """LoRA scaling alpha (lora and qlora)."""
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """Dropout on the LoRA path (lora and qlora)."""
    target_modules: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]],
        Field(min_length=1, max_length=64),
    ] = Field(default_factory=lambda: ["all-linear"])
    """Modules that get adapters: all-linear, or module names such as q_proj, v_proj."""
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 42
    """Seed for initialisation, shuffling and dropout."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% slower."""
    logging_steps: Annotated[int, Field(ge=1, le=100_000)] = 10
    """Report loss and progress every this many steps."""
    flash_attention: bool = False
    """Use FlashAttention 2 (needs a supported GPU and the flash-attn package)."""
    precision: Precision = Precision.auto
    """Compute precision; auto: bf16 where the GPU supports it, else fp16 on GPUs, fp32 on CPU."""
    dpo_beta: Annotated[float, Field(gt=0, le=10)] = 0.1
    """DPO's beta (trainer dpo only): how strongly the tuned model is held to the base model;
    higher stays closer to it, lower lets the preferences pull further (typical 0.01 to 0.5)."""


class Evaluation(ApiModel):
    """When to evaluate on the eval set."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.strategy != 'steps' || has(self.steps)",
            message="spec.evaluation.steps is required when strategy is steps",
            field_path=".steps",
        ),
    )

    strategy: Literal["no", "steps", "epoch"] = "epoch"
    """no, steps (every `steps` steps) or epoch."""
    steps: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    """Evaluate every this many steps (strategy steps)."""


class Checkpoints(ApiModel):
    """Checkpointing and resume after preemption."""

    interval_steps: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    """Save every this many steps; unset saves once per epoch."""
    keep: Annotated[int, Field(ge=1, le=100)] = 2
    """How many of the newest complete checkpoints to keep."""
    resume: bool = True
    """Resume from the newest complete checkpoint when the pod restarts."""


class Output(ApiModel):
    """Where results go."""

    uri: OutputUri
    """Prefix for the adapter, checkpoints and the run record: gs://, s3:// or file://."""


class Wandb(ApiModel):
    """Weights & Biases tracking."""

    project: Annotated[str, Field(min_length=1, max_length=128)]
    """W&B project."""
    entity: Annotated[str, Field(max_length=128)] | None = None
    """W&B entity (user or team)."""
    run_name: Annotated[str, Field(max_length=128)] | None = None
    """Run name; defaults to namespace/name of the FineTuneJob."""
    tags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Run tags."""
    api_key_secret_ref: SecretKeyRef
    """Secret key holding the W&B API key."""


class Tracking(ApiModel):
    """Experiment tracking."""

    wandb: Wandb | None = None
    """Log metrics to Weights & Biases."""


class StorageS3(ApiModel):
    """Settings for s3:// locations."""

    endpoint: Annotated[str, Field(max_length=512, pattern=r"^https?://[^\s/]+(/.*)?$")] | None = None
    """Endpoint of an S3-compatible store (MinIO, SeaweedFS, R2); unset means AWS."""
    region: Annotated[str, Field(max_length=64)] | None = None
    """Region of the bucket."""
    credentials_secret: DnsLabel | None = None
    """Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally
    AWS_SESSION_TOKEN). Unset uses the pod's identity (IRSA, instance role)."""


class StorageGcs(ApiModel):
    """Settings for gs:// locations."""

    endpoint: Annotated[str, Field(max_length=512, pattern=r"^https?://[^\s/]+(/.*)?$")] | None = None
    """Endpoint of a GCS-compatible server (an emulator); unset means Google."""
    credentials_secret: DnsLabel | None = None
    """Secret with a service-account key under key.json. Unset uses the pod's
    identity (Workload Identity)."""


class Storage(ApiModel):
    """How the Job's pods reach object stores."""

    s3: StorageS3 | None = None
    """Settings for s3:// URIs."""
    gcs: StorageGcs | None = None
    """Settings for gs:// URIs."""


class Toleration(ApiModel):
    """A Kubernetes toleration for the training pods."""

    key: Annotated[str, Field(max_length=253)] | None = None
    """Taint key."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal."""
    value: Annotated[str, Field(max_length=253)] | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; unset tolerates all."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated."""


QUANTITY = r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY)]


class Resources(ApiModel):
    """Compute for each training pod."""

    gpus: Annotated[int, Field(ge=0, le=64)] = 1
    """GPUs per pod (nvidia.com/gpu); 0 trains on CPU. More than 1 runs one trainer process per GPU."""
    gpu_type: Annotated[str, Field(max_length=128)] | None = None
    """GPU model to schedule onto, matched against the operator's GPU node label."""
    cpu: Quantity | None = None
    """CPU request and limit, e.g. "8"."""
    memory: Quantity | None = None
    """Memory request and limit, e.g. "64Gi"."""
    shared_memory: Quantity = "2Gi"
    """Size of /dev/shm (data-loader workers and NCCL need more than the 64Mi default)."""
    node_selector: Annotated[dict[str, Annotated[str, Field(max_length=63)]], Field(max_length=32)] = Field(
        default_factory=dict
    )
    """Extra node labels the pods must match."""
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(default_factory=list)
    """Tolerations for tainted (GPU, spot) nodes."""
    spot: bool = False
    """Allow spot / preemptible nodes; preemption is retried without counting as a failure."""


class Distributed(ApiModel):
    """Scale-out across GPUs and nodes: one trainer process per GPU under torchrun; several nodes
    run as an Indexed Job whose pods meet through a headless Service (torch's c10d rendezvous)."""

    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    """Number of nodes (pods), each with spec.resources; the pod of completion index 0 is rank 0."""
    gpus_per_node: Annotated[int, Field(ge=1, le=64)] | None = None
    """Trainer processes per node; defaults to resources.gpus (one per GPU). With resources.gpus 0,
    that many CPU processes (gloo)."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """ddp (every process holds the whole model) or fsdp (parameters sharded across the processes;
    needs CUDA GPUs)."""


class RunPolicy(ApiModel):
    """Limits, retries and queueing."""

    active_deadline_seconds: Annotated[int, Field(ge=1, le=31_536_000)] | None = None
    """Fail the run when it has been running longer than this."""
    backoff_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Retries of failed pods; preemptions and node loss are not counted."""
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=31_536_000)] | None = None
    """Delete the Job (not the FineTuneJob or its artifacts) this long after it ends."""
    queue_name: Annotated[str, Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] | None = (
        None
    )
    """Kueue LocalQueue to admit the run through."""
    suspend: bool = False
    """Keep the run from starting (or pause it) while true."""


class ExportTemplate(ApiModel):
    """A ModelExport to create when training succeeds, named <FineTuneJob>-<name>."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (QUANTIZATION_RULE,)

    name: Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    """Suffix of the created ModelExport's name (at most 10 characters)."""
    format: ExportFormat = "adapter"
    """adapter, merged, gguf or adapter-gguf (see ModelExport)."""
    quantization: Quantization | None = None
    """GGUF quantization (format gguf); q8_0 when unset."""
    destinations: Annotated[list[Destination], Field(min_length=1, max_length=16)]
    """Where to publish: URIs and/or Hugging Face Hub repositories."""
    archive: Archive = "none"
    """Publish a folder as is, or as one zip file."""


class FineTuneJobSpec(ApiModel):
    """What to train, on what, how, and where the results go."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.trainer != 'dpo' || self.dataset.format in ['auto', 'preference']",
            message="spec.dataset.format must be preference (or auto) when spec.trainer is dpo",
            field_path=".dataset.format",
        ),
        CelRule(
            rule="self.trainer != 'sft' || self.dataset.format != 'preference'",
            message="spec.dataset.format preference needs spec.trainer dpo",
            field_path=".dataset.format",
        ),
        CelRule(
            rule="self.trainer != 'dpo' || !has(self.hyperparameters) || "
            "!has(self.hyperparameters.packing) || !self.hyperparameters.packing",
            message="spec.hyperparameters.packing applies to spec.trainer sft only (DPO compares whole "
            "chosen and rejected answers)",
            field_path=".hyperparameters.packing",
        ),
        CelRule(
            rule="self.method != 'full' || !has(self.hyperparameters) || "
            "self.hyperparameters.targetModules == ['all-linear']",
            message="spec.hyperparameters.targetModules applies to lora and qlora only",
            field_path=".hyperparameters.targetModules",
        ),
        CelRule(
            rule="self.modality != 'vision' || self.dataset.format in ['auto', 'chat']",
            message="spec.dataset.format must be chat (or auto) when spec.modality is vision",
            field_path=".dataset.format",
        ),
        CelRule(
            rule="self.modality != 'vision' || !has(self.hyperparameters) || "
            "!has(self.hyperparameters.packing) || !self.hyperparameters.packing",
            message="spec.hyperparameters.packing is not supported with spec.modality vision",
            field_path=".hyperparameters.packing",
        ),
        CelRule(
            rule="!has(self.distributed) || self.distributed.nodes == 1 || "
            "!has(self.resources) || self.resources.gpus > 0",
            message="spec.distributed.nodes > 1 needs spec.resources.gpus >= 1",
            field_path=".distributed.nodes",
        ),
        CelRule(
            rule="!has(self.evaluation) || self.evaluation.strategy == 'no' || "
            "has(self.dataset.evalSource) || has(self.dataset.evalSplit)",
            message="spec.evaluation needs spec.dataset.evalSource or spec.dataset.evalSplit "
            "(or set spec.evaluation.strategy to no)",
            field_path=".evaluation",
        ),
    )

    model: ModelSource
    """The base model."""
    dataset: DatasetSource
    """The training (and optional evaluation) data."""
    output: Output
    """Where the adapter, checkpoints and run record are written."""
    method: Method = Method.lora
    """lora, qlora (4-bit base) or full fine-tuning."""
    trainer: TrainerKind = TrainerKind.sft
    """sft (supervised) or dpo (preference)."""
    modality: Modality = Modality.text
    """text, or vision: image+text chat records (see dataset.format) on a vision-language model
    (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...) loaded with its processor."""
    provider: Provider = Provider.huggingface
    """Training backend: huggingface (transformers/peft/trl) or unsloth."""
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    """Optimisation and adapter settings."""
    evaluation: Evaluation | None = None
    """When to evaluate; needs an eval set in spec.dataset."""
    checkpoints: Checkpoints | None = None
    """Checkpointing and resume."""
    exports: Annotated[list[ExportTemplate], Field(max_length=16)] | None = None
    """ModelExports to create when training succeeds."""
    tracking: Tracking | None = None
    """Experiment tracking."""
    storage: Storage | None = None
    """Endpoints and credentials for s3:// and gs:// locations."""
    resources: Resources = Field(default_factory=Resources)
    """Compute for each training pod."""
    distributed: Distributed | None = None
    """Multi-GPU and multi-node training."""
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    """Deadline, retries, TTL, Kueue queue, suspend."""
    cleanup_policy: Literal["Retain", "Delete"] = "Retain"
    """On deletion: Retain keeps the artifacts; Delete removes them too."""


_MUTABLE = " (only spec.runPolicy.suspend and spec.runPolicy.activeDeadlineSeconds may change)"
FineTuneJobSpec.cel_rules += immutable_field_rules(
    FineTuneJobSpec, kind=KIND, exempt={"runPolicy"}, mutable_hint=_MUTABLE
) + immutable_field_rules(
    RunPolicy,
    kind=KIND,
    prefix="runPolicy.",
    exempt={"suspend", "activeDeadlineSeconds"},
    mutable_hint=_MUTABLE,
)


# --- status ----------------------------------------------------------------


class Progress(ApiModel):
    """Live training progress, written by the trainer."""

    step: Annotated[int, Field(ge=0)] = 0
    """Optimizer steps done."""
    total_steps: Annotated[int, Field(ge=0)] | None = None
    """Optimizer steps planned."""
    epoch: Annotated[float, Field(ge=0)] | None = None
    """Current (fractional) epoch."""
    total_epochs: Annotated[float, Field(ge=0)] | None = None
    """Epochs planned."""
    percent: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of steps done."""
    eta_seconds: Annotated[int, Field(ge=0)] | None = None
    """Estimated seconds left."""
    tokens_per_second: Annotated[float, Field(ge=0)] | None = None
    """Training throughput over the last interval."""
    loss: float | None = None
    """Latest training loss."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """What the trainer is doing now."""
    update_time: Annotated[str, Field(max_length=64)] | None = None
    """When this block was last written (RFC 3339)."""


class Metrics(ApiModel):
    """Final (and latest evaluation) metrics."""

    train_loss: float | None = None
    """Mean training loss over the run."""
    final_loss: float | None = None
    """Training loss of the last logged step."""
    eval_loss: float | None = None
    """Loss on the eval set."""
    perplexity: float | None = None
    """exp(eval loss)."""
    mean_token_accuracy: float | None = None
    """Share of eval tokens predicted exactly."""
    tokens_per_second: float | None = None
    """Mean training throughput."""
    train_runtime_seconds: float | None = None
    """Wall time spent training."""
    eval_runtime_seconds: float | None = None
    """Wall time of the last evaluation."""
    train_samples: int | None = None
    """Samples used for training."""
    truncated_samples: int | None = None
    """Samples longer than maxSeqLength, truncated."""
    dropped_samples: int | None = None
    """Samples longer than maxSeqLength, dropped (spec.dataset.overlength drop)."""
    reward_accuracy: float | None = None
    """DPO: share of preference pairs whose chosen answer the tuned model rewards above the
    rejected one, at the last logged training step (0.5 is chance)."""
    reward_margin: float | None = None
    """DPO: mean reward of the chosen answers minus that of the rejected ones, at the last
    logged training step (rewards are beta times the log-probability ratio to the base model)."""
    eval_reward_accuracy: float | None = None
    """DPO: reward accuracy on the eval set, at the last evaluation."""
    eval_reward_margin: float | None = None
    """DPO: reward margin on the eval set, at the last evaluation."""


class Artifacts(ApiModel):
    """Where the results are."""

    adapter: Annotated[str, Field(max_length=2048)] | None = None
    """The trained LoRA adapter with its tokenizer (methods lora and qlora)."""
    model: Annotated[str, Field(max_length=2048)] | None = None
    """The fully fine-tuned model with its tokenizer, a Hugging Face model folder (method full)."""
    checkpoints: Annotated[str, Field(max_length=2048)] | None = None
    """Prefix holding checkpoints."""
    run_record: Annotated[str, Field(max_length=2048)] | None = None
    """Prefix of the run record: config.json (secrets redacted), log, metrics, status."""


class FineTuneJobStatus(ApiModel):
    """Observed state. Conditions are the truth; the rest is detail."""

    observed_generation: int | None = None
    """The .metadata.generation the operator last acted on."""
    conditions: Conditions = Field(default_factory=list)
    """Succeeded (Unknown while running, its reason the stage) and others."""
    job_name: Annotated[str, Field(max_length=63)] | None = None
    """The batch/v1 Job running the training."""
    start_time: Annotated[str, Field(max_length=64)] | None = None
    """When the Job started."""
    completion_time: Annotated[str, Field(max_length=64)] | None = None
    """When the run ended."""
    progress: Progress | None = None
    """Live progress."""
    metrics: Metrics | None = None
    """Training and evaluation metrics."""
    artifacts: Artifacts | None = None
    """Where the results are."""
    tracking_url: Annotated[str, Field(max_length=2048)] | None = None
    """Link to the experiment tracker's run page."""


class FineTuneJob(ApiModel):
    """A fine-tuning run: a base model and a dataset in, a trained adapter out.

    The operator runs it as a batch/v1 Job (initContainers fetch the model and the
    dataset, the trainer container trains) and reports progress, metrics and
    artifact locations in .status; the Succeeded condition says where the run
    stands. The spec cannot change after creation, except
    spec.runPolicy.suspend and spec.runPolicy.activeDeadlineSeconds.
    """

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
            message=f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the operator "
            "derives Job and ServiceAccount names from it that must fit in 63",
        ),
    )

    api_version: Literal["tuneforge.io/v1alpha1"] = API_VERSION
    kind: Literal["FineTuneJob"] = KIND
    metadata: ObjectMeta
    spec: FineTuneJobSpec
    status: FineTuneJobStatus | None = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FineTuneJob:
        """Validates as the API server does: JSON types strictly ("8" is not 8)."""
        return cls.model_validate_json(json.dumps(manifest), strict=True)
