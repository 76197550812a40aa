"""Status reporting of a running trainer: to the FineTuneJob's status in a
cluster, to the terminal and a status.json file locally."""

from tuneforge.reporting.kube import KubernetesSink, status_url
from tuneforge.reporting.local import LocalSink
from tuneforge.reporting.reporter import Reporter, Sink, reporter_from_env

__all__ = ["KubernetesSink", "LocalSink", "Reporter", "Sink", "reporter_from_env", "status_url"]
