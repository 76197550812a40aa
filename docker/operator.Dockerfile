# The operator: kopf and lightkube, no torch.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/tuneforge/operator:0.1.0 .
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tuneforge ./tuneforge
COPY api ./api
COPY operator ./operator
COPY trainer ./trainer
COPY exporter ./exporter
RUN pip install ".[operator]"
USER 1000:1000
ENTRYPOINT ["tuneforge-operator", "--liveness=http://0.0.0.0:8080/healthz"]
