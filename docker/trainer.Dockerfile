# The image of the Job's containers: `tuneforge fetch` (init containers) and
# `tuneforge train` (the trainer). CUDA wheels of torch come from PyPI.
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
RUN pip install torch==2.13.0 && pip install ".[trainer]"
# Pod Security "restricted": a numeric non-root user.
USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["tuneforge"]
