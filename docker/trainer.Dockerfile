# The image of the Job's containers: `tuneforge fetch` (init containers),
# `tuneforge train` (the trainer) and `tuneforge export` (ModelExport Jobs). CUDA wheels of torch come from PyPI.
#   docker build -f docker/trainer.Dockerfile -t ghcr.io/tuneforge/tuneforge:0.1.0 .
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HOME=/tmp
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tuneforge ./tuneforge
COPY api ./api
COPY operator ./operator
COPY trainer ./trainer
COPY exporter ./exporter
# The exporter's llama.cpp (llama-cpp-python) is built from source, not
# -march=native (that build crashes at the first quantized decode on CPUs
# with AMX); its converters and gguf-py of the same commit are unpacked
# beside it. The compiler leaves the image once the build is done.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && pip install torch==2.13.0 \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install ".[trainer,exporter]" \
    && tuneforge llama-cpp install \
    && apt-get purge -y build-essential cmake && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
# Pod Security "restricted": a numeric non-root user.
USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["tuneforge"]
