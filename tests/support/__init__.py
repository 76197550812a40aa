"""Test harness: the Kubernetes API emulation, the kubelet fixture, real S3/GCS
servers and the tiny model. Fixture modules are loaded as pytest plugins by
tests/conftest.py."""
