"""One LoRA SFT run with trl: data prepared, model loaded, trained, adapter saved."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.api.finetunejob import Hyperparameters
from tuneforge.reporting import Reporter
from tuneforge.trainer.dataset import LoadedDataset, load_dataset, split_eval, to_trl_rows
from tuneforge.trainer.errors import InvalidSpec
from tuneforge.trainer.hyperparams import (
    attn_implementation,
    lora_kwargs,
    resolve_precision,
    resolve_target_modules,
    sft_kwargs,
)
from tuneforge.trainer.metrics import final_metrics
from tuneforge.trainer.model import (
    Hardware,
    check_chat_template,
    copy_sentencepiece_model,
    linear_module_names,
    load_model,
    load_tokenizer,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    model: Path
    dataset: Path
    eval_dataset: Path | None
    workdir: Path

    @property
    def adapter(self) -> Path:
        return self.workdir / "adapter"


@dataclass
class Data:
    """Validated records, split into train and eval."""

    format: str
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    skipped: int
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Runtime:
    """How this machine will run the spec."""

    precision: str
    attention: str | None
    cuda: bool


@dataclass
class Rows:
    """trl-shaped rows and how many exceed maxSeqLength."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    truncated: int
    longest: int


@dataclass
class Result:
    steps: int
    metrics: dict[str, float | int]
    history: list[dict[str, Any]]


def resolve_runtime(hp: Hyperparameters, hardware: Hardware) -> Runtime:
    """Precision and attention for this machine; refuses what it cannot do (UNSUPPORTED)."""
    precision = resolve_precision(hp.precision, cuda=hardware.cuda, bf16_supported=hardware.bf16_supported)
    attention = attn_implementation(
        hp.flash_attention, cuda=hardware.cuda, flash_attn_installed=hardware.flash_attn_installed
    )
    log.info("precision %s on %s", precision, "CUDA" if hardware.cuda else "CPU")
    return Runtime(precision, attention, hardware.cuda)


def prepare_data(job: FineTuneJob, paths: Paths) -> Data:
    """Load, validate and split the data; runs before the model is loaded, so bad data fails fast."""
    spec = job.spec
    train = load_dataset(paths.dataset, spec.dataset.format.value)
    log.info("dataset: %s", train.summary())
    problems = [str(p) for p in train.problems]
    evals: LoadedDataset | None = None
    if paths.eval_dataset is not None:
        evals = load_dataset(paths.eval_dataset, train.format, what="eval dataset")
        log.info("eval dataset: %s", evals.summary())
        problems += [str(p) for p in evals.problems]
    elif spec.dataset.eval_source is not None:
        raise InvalidSpec("spec.dataset.evalSource is set but the trainer was given no --eval-dataset folder")
    records, eval_records = train.records, evals.records if evals is not None else None
    if spec.dataset.eval_split is not None:
        records, eval_records = split_eval(records, spec.dataset.eval_split, spec.hyperparameters.seed)
        log.info(
            "held out %d records for evaluation (evalSplit %g)", len(eval_records), spec.dataset.eval_split
        )
    skipped = train.skipped + (evals.skipped if evals is not None else 0)
    return Data(train.format, records, eval_records, skipped, problems)


def sample_lengths(rows: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Token count of each trl row as trl will tokenize it (eos included for plain text)."""
    lengths = []
    for row in rows:
        if "messages" in row:
            conversation = row["messages"]
        elif isinstance(row["prompt"], list):
            conversation = row["prompt"] + row["completion"]
        else:
            lengths.append(len(tokenizer(row["prompt"] + row["completion"])["input_ids"]) + 1)
            continue
        encoded = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)
        lengths.append(len(encoded["input_ids"]))
    return lengths


def count_truncated(lengths: list[int], max_length: int) -> int:
    return sum(1 for n in lengths if n > max_length)


def prepare_rows(data: Data, tokenizer: Any, max_length: int, model_dir: Path) -> Rows:
    """Rows for trl; samples longer than ``max_length`` are counted and reported, never silently cut."""
    check_chat_template(tokenizer, data.format, model_dir)
    chat_template = bool(getattr(tokenizer, "chat_template", None))
    train = to_trl_rows(data.train, data.format, chat_template=chat_template)
    evals = to_trl_rows(data.eval, data.format, chat_template=chat_template) if data.eval else None
    lengths = sample_lengths(train + (evals or []), tokenizer)
    truncated = count_truncated(lengths, max_length)
    if truncated:
        log.warning(
            "%d of %d samples are longer than maxSeqLength=%d tokens (longest %d) and will be truncated",
            truncated,
            len(lengths),
            max_length,
            max(lengths),
        )
    return Rows(train, evals, truncated, max(lengths, default=0))


def build_trainer(
    job: FineTuneJob, rows: Rows, model: Any, tokenizer: Any, runtime: Runtime, paths: Paths
) -> Any:
    import datasets
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl.chat_template_utils import has_generation_markers
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    hp = job.spec.hyperparameters
    targets = resolve_target_modules(hp.target_modules, linear_module_names(model))
    conversational = bool(rows.train) and "messages" in rows.train[0]
    template: Any = getattr(tokenizer, "chat_template", None)
    config = SFTConfig(
        **sft_kwargs(
            hp,
            job.spec.evaluation,
            precision=runtime.precision,
            cuda=runtime.cuda,
            has_eval=rows.eval is not None,
            output_dir=paths.workdir / "checkpoints",
        ),
        # Learn the assistant's turns only, where the template marks them.
        assistant_only_loss=conversational and bool(template) and has_generation_markers(template),
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows.train),
        eval_dataset=datasets.Dataset.from_list(rows.eval) if rows.eval else None,
        processing_class=tokenizer,
        peft_config=LoraConfig(**lora_kwargs(hp, targets)),
    )
    # Our callback reports progress; transformers' printer would dump every log dict on stdout.
    trainer.remove_callback(PrinterCallback)
    return trainer


def check_learnable(trainer: Any, rows: Rows, hp: Hyperparameters) -> None:
    """trl drops samples whose answer truncation cut off entirely; say so, and refuse when none are left."""
    if hp.packing:
        return  # packed rows no longer map one-to-one to samples
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise InvalidSpec(
            f"spec.hyperparameters.maxSeqLength {hp.max_seq_length} leaves nothing to learn: in every "
            f"training sample the prompt alone fills it; raise maxSeqLength (the longest sample has "
            f"{rows.longest} tokens)"
        )
    if kept < len(rows.train):
        log.warning(
            "%d training samples were dropped: their prompt alone fills maxSeqLength=%d tokens",
            len(rows.train) - kept,
            hp.max_seq_length,
        )


def evaluate_at_end(trainer: Any, reporter: Reporter) -> None:
    """Evaluate once more unless the last evaluation was at the last step (maxSteps may cut an epoch)."""
    if trainer.eval_dataset is None or trainer.args.eval_strategy == "no":
        return
    evaluated_at = [h.get("step") for h in trainer.state.log_history if "eval_loss" in h]
    if not evaluated_at or evaluated_at[-1] != trainer.state.global_step:
        reporter.note("evaluating")
        trainer.evaluate()


def save_adapter(trainer: Any, tokenizer: Any, paths: Paths) -> None:
    paths.adapter.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(paths.adapter)
    tokenizer.save_pretrained(paths.adapter)
    copy_sentencepiece_model(paths.model, paths.adapter)


def run_training(job: FineTuneJob, data: Data, runtime: Runtime, paths: Paths, reporter: Reporter) -> Result:
    """Train the adapter and save it (with the tokenizer) under ``paths.adapter``."""
    reporter.note("loading the model")
    import transformers

    from tuneforge.trainer.callback import ReporterCallback

    hp = job.spec.hyperparameters
    tokenizer = load_tokenizer(paths.model)
    rows = prepare_rows(data, tokenizer, hp.max_seq_length, paths.model)
    transformers.set_seed(hp.seed)  # LoRA weights are initialised before the Trainer seeds
    model = load_model(paths.model, precision=runtime.precision, attn_implementation=runtime.attention)
    trainer = build_trainer(job, rows, model, tokenizer, runtime, paths)
    check_learnable(trainer, rows, hp)
    trainer.add_callback(ReporterCallback(reporter))
    output = trainer.train()
    evaluate_at_end(trainer, reporter)
    save_adapter(trainer, tokenizer, paths)
    history = list(trainer.state.log_history)
    metrics = final_metrics(
        history, output.metrics, train_samples=len(rows.train), truncated_samples=rows.truncated
    )
    return Result(steps=trainer.state.global_step, metrics=metrics, history=history)
