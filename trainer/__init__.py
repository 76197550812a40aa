"""The trainer container: ``tuneforge train`` (``tuneforge.trainer.main:main``).

main        arguments -> Run: spec, data, training, upload, run record, termination message
spec        read the FineTuneJob YAML; refuse what this version does not implement
records     raw JSONL / JSON-array records with file:line
readers     every source of a dataset folder (JSONL, JSON, Parquet, save_to_disk), records located
formats     validate and normalise alpaca, chat, prompt-completion, preference records (pure)
detection   spec.dataset.format auto: which format, or a refusal saying why (pure)
dataset     load a dataset, split eval, shape rows for trl
overlength  samples longer than maxSeqLength: measured, truncated or dropped, counted
dpo         spec.trainer dpo: DPOConfig kwargs and trl's DPOTrainer against the base model
hyperparams spec.hyperparameters -> LoraConfig / SFTConfig kwargs; precision and attention (pure)
model       load model and tokenizer; linear module names
train       one training run with trl (SFT or DPO)
callback    TrainerCallback feeding the Reporter
checkpoints spec.checkpoints: names, fingerprint, resume choice, keep (pure)
checkpoint_store  checkpoints in the output store; the background uploader
resumable   CheckpointSession: resume, save and upload, Preempted on SIGTERM
preemption  SIGTERM: stop at once, at the next step boundary, or finish
samplelog   TUNEFORGE_SAMPLE_LOG: the rows each optimizer step trained on
metrics     trainer logs -> API Metrics
runrecord   config.json (redacted), train.log, metrics.jsonl, status.json
logs        logging to stderr and train.log
errors      failures with their reason and exit code
"""
