"""One training run with trl (SFT, or DPO: tuneforge.trainer.dpo): data prepared, model loaded,
trained, adapter saved."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.api.finetunejob import Hyperparameters, Modality, TrainerKind
from tuneforge.reporting import Reporter
from tuneforge.trainer.batching import batching_kwargs
from tuneforge.trainer.checkpoints import save_kwargs
from tuneforge.trainer.dataset import LoadedDataset, load_dataset, split_eval, to_trl_rows
from tuneforge.trainer.distributed import (
    SampleTally,
    Worker,
    rank_report,
    save_once,
    save_processing_class,
    strategy_of,
    training_kwargs,
)
from tuneforge.trainer.dpo import build_dpo_trainer
from tuneforge.trainer.errors import InvalidSpec
from tuneforge.trainer.hyperparams import (
    attn_implementation,
    resolve_precision,
    sft_kwargs,
)
from tuneforge.trainer.metrics import final_metrics
from tuneforge.trainer.model import (
    Hardware,
    TrainableModel,
    artifact_name,
    check_chat_template,
    load_processing_class,
    prepare_model,
    save_artifact,
)
from tuneforge.trainer.overlength import Policy, fit_to_length
from tuneforge.trainer.tracking import report_to
from tuneforge.trainer.vision import FORMAT as VISION_FORMAT
from tuneforge.trainer.vision import load_vision_dataset, vision_rows

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
    """trl-shaped rows and how many exceed maxSeqLength (truncated, or dropped from the rows)."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    truncated: int
    longest: int
    dropped: int = 0


@dataclass
class Result:
    steps: int
    metrics: dict[str, float | int]
    history: list[dict[str, Any]]
    distributed: dict[str, Any] | None = None
    """World size and what each rank trained on (trainer/distributed.py)."""


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
    load: Any = load_vision_dataset
    if spec.modality != Modality.vision:
        load = partial(load_dataset, trainer=spec.trainer.value)
    train = load(paths.dataset, spec.dataset.format.value)
    log.info("dataset: %s", train.summary())
    problems = [str(p) for p in train.problems]
    evals: LoadedDataset | None = None
    if paths.eval_dataset is not None:
        evals = load(paths.eval_dataset, train.format, what="eval dataset")
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


def prepare_rows(
    data: Data,
    tokenizer: Any,
    max_length: int,
    model_dir: Path,
    *,
    packing: bool = False,
    overlength: Policy = "truncate",
) -> Rows:
    """Rows for trl; samples longer than ``max_length`` are counted and reported, never silently cut."""
    if data.format == VISION_FORMAT:  # ``tokenizer`` is the VLM's processor
        return Rows(
            *vision_rows(data.train, data.eval, tokenizer, max_length, packing=packing, overlength=overlength)
        )
    check_chat_template(tokenizer, data.format, model_dir)
    chat_template = bool(getattr(tokenizer, "chat_template", None))
    train = to_trl_rows(data.train, data.format, chat_template=chat_template)
    evals = to_trl_rows(data.eval, data.format, chat_template=chat_template) if data.eval else None
    fitted = fit_to_length(train, evals, tokenizer, max_length, overlength)
    return Rows(fitted.train, fitted.eval, fitted.truncated, fitted.longest, fitted.dropped)


def trainer_kwargs(job: FineTuneJob, rows: Rows, runtime: Runtime, paths: Paths) -> dict[str, Any]:
    """The training arguments SFT and DPO share (trl's SFTConfig/DPOConfig keyword arguments)."""
    return (
        sft_kwargs(
            job.spec.hyperparameters,
            job.spec.evaluation,
            precision=runtime.precision,
            cuda=runtime.cuda,
            has_eval=rows.eval is not None,
            output_dir=paths.workdir / "checkpoints",
        )
        | {"report_to": report_to(job.spec)}
        | save_kwargs(job.spec.checkpoints)
        | training_kwargs(strategy_of(job.spec), Worker.from_env(), cuda=runtime.cuda)
    )


def build_trainer(
    job: FineTuneJob, rows: Rows, trainable: TrainableModel, tokenizer: Any, runtime: Runtime, paths: Paths
) -> Any:
    import datasets
    from transformers.trainer_callback import PrinterCallback
    from trl.chat_template_utils import has_generation_markers
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    conversational = bool(rows.train) and "messages" in rows.train[0]
    template: Any = getattr(tokenizer, "chat_template", None)
    config = SFTConfig(
        # Padding-free batches where they change nothing but the speed (trainer/batching.py).
        **(trainer_kwargs(job, rows, runtime, paths) | batching_kwargs(job.spec, truncated=rows.truncated)),
        # Learn the assistant's turns only, where the template marks them.
        assistant_only_loss=conversational and bool(template) and has_generation_markers(template),
    )
    trainer = SFTTrainer(
        model=trainable.model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows.train),
        eval_dataset=datasets.Dataset.from_list(rows.eval) if rows.eval else None,
        processing_class=tokenizer,
        peft_config=trainable.peft_config,
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


def run_training(job: FineTuneJob, data: Data, runtime: Runtime, paths: Paths, reporter: Reporter) -> Result:
    """Train the adapter and save it (with the tokenizer) under ``paths.adapter``."""
    from tuneforge.trainer.resumable import CheckpointSession

    # Before the model loads: a checkpoint of another spec is refused early, the resume point fetched.
    checkpoints = CheckpointSession.open(job, data.train, paths.workdir, reporter)
    reporter.note("loading the model")
    import transformers

    from tuneforge.trainer import cpu_dropout
    from tuneforge.trainer.callback import ReporterCallback

    hp = job.spec.hyperparameters
    tokenizer = load_processing_class(job.spec, paths.model)
    rows = prepare_rows(
        data,
        tokenizer,
        hp.max_seq_length,
        paths.model,
        packing=hp.packing,
        overlength=job.spec.dataset.overlength,
    )
    transformers.set_seed(hp.seed)  # LoRA weights are initialised before the Trainer seeds
    trainable = prepare_model(
        job.spec, paths.model, precision=runtime.precision, attn_implementation=runtime.attention
    )
    if job.spec.trainer == TrainerKind.dpo:
        training = trainer_kwargs(job, rows, runtime, paths)
        trainer = build_dpo_trainer(
            training, hp, rows.train, rows.eval, trainable.model, tokenizer, trainable.peft_config
        )
    else:
        trainer = build_trainer(job, rows, trainable, tokenizer, runtime, paths)
    check_learnable(trainer, rows, hp)
    cpu_dropout.install(trainer.model)
    trainer.add_callback(ReporterCallback(reporter))
    tally = SampleTally.attach(trainer)
    output = checkpoints.train(trainer)  # resumes, checkpoints, and stops on SIGTERM (Preempted)
    evaluate_at_end(trainer, reporter)
    worker, strategy = Worker.from_env(), strategy_of(job.spec)
    ranks = rank_report(trainer, tally, worker, strategy)  # every rank takes part
    dest = paths.workdir / artifact_name(job.spec)
    save_once(
        trainer,
        worker,
        strategy,
        save_artifact=lambda: save_artifact(job.spec, trainer.model, tokenizer, paths.model, dest),
        save_processing_class=lambda: save_processing_class(tokenizer, paths.model, dest),
        dest=str(dest),
    )
    history = list(trainer.state.log_history)
    metrics = final_metrics(
        history,
        output.metrics,
        train_samples=len(rows.train),
        truncated_samples=rows.truncated,
        dropped_samples=rows.dropped if job.spec.dataset.overlength == "drop" else None,
    )
    return Result(steps=trainer.state.global_step, metrics=metrics, history=history, distributed=ranks)
