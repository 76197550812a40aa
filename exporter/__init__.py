"""The export container: ``tuneforge export`` (``tuneforge.exporter.main:main``).

main               arguments -> Export -> status, termination message, exit code
export             one export: identity, reuse check, build, publish (the steps' glue)
spec               read the ModelExport; combine it with the operator's --adapter-uri/--base-model-uri
identity           the artifact's digest (adapter content, base version, format, quantization, llama.cpp)
sources            read the inputs: adapter manifest, base version, run record, fetches
build              make the artifact in the work folder: adapter, merged, GGUF, adapter GGUF, zip
merge              the streaming LoRA merge (bit-identical to peft's merge_and_unload), shard by shard
merge_ops          the merge arithmetic, with peft's float operations
adapter_weights    an adapter's tensors, read on demand
lora_plan          which base tensors an adapter changes, and how (pure)
adapter_config     adapter_config.json: what the merge honours and refuses
model_files        a model folder's weights, shard index, and the files copied beside merged weights
safetensors_stream read/write safetensors one tensor at a time, without mmap
write_behind       write one tensor on a worker thread while the next is merged
archive            reproducible zip of a folder (archive: zip)
artifacts          artifact names and the record (<artifact>.tuneforge.json) (pure)
destinations       publish to file:// s3:// gs:// so no half-written artifact is ever visible
hub_destination    publish to a Hugging Face Hub repository (one commit: files, record, card)
card               the model card (pure)
cache              the merged-model cache beside the adapter
outcome            reason/message/artifacts for the status and the termination message (pure)
errors             failures with their reason and exit code
logs               logging to stderr and export.log
gguf, gguf_*       llama.cpp conversion, quantization and verification
"""
