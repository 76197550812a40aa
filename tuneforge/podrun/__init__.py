"""Runs a Kubernetes pod spec as local processes.

One engine, two users: ``tuneforge run`` (a FineTuneJob on a laptop) and the
tests' kubelet fixture (every Job the operator creates). Both hand it the pod
spec the operator's builders made, so a wrong flag or env var in a manifest
fails locally exactly as it would in a cluster.

What is emulated: init containers in order, then the containers together;
``command``/``args``/``env`` (values, ``$(VAR)`` expansion, secretKeyRef,
configMapKeyRef, fieldRef, envFrom); volumes (emptyDir, configMap, secret,
projected service-account token, CA and downward API) as folders under a
work directory; termination messages. Mount paths are mapped by rewriting
every argument and env value that is a mount path or lies under one — so a
process must get its paths through its arguments or environment, which the
builders guarantee. Host names of a multi-node run's pods (``hosts``) are mapped the same
way, to addresses on this machine (``podrun.dns``): the one emulated piece of
cluster networking. Images, resources and security contexts are not
emulated: the processes run from this Python environment.
"""

from tuneforge.podrun.resolver import ConfigError, MapResolver, Resolver
from tuneforge.podrun.runner import ContainerResult, PodOutcome, PodRunner

__all__ = [
    "ConfigError",
    "ContainerResult",
    "MapResolver",
    "PodOutcome",
    "PodRunner",
    "Resolver",
]
