"""The trainer container: ``tuneforge train`` (``tuneforge.trainer.main:main``).

main        arguments -> Run: spec, data, training, upload, run record, termination message
spec        read the FineTuneJob YAML; refuse what this version does not implement
records     raw JSONL / JSON-array records with file:line
formats     detect, validate and normalise alpaca and chat records (pure)
dataset     load a dataset folder, split eval, shape rows for trl
hyperparams spec.hyperparameters -> LoraConfig / SFTConfig kwargs; precision and attention (pure)
model       load model and tokenizer; linear module names
train       one LoRA SFT run with trl
callback    TrainerCallback feeding the Reporter
metrics     trainer logs -> API Metrics
runrecord   config.json (redacted), train.log, metrics.jsonl, status.json
logs        logging to stderr and train.log
errors      failures with their reason and exit code
"""
