"""Loads the harness's fixture plugins for every test folder."""

pytest_plugins = [
    "support.kube_fixtures",
    "support.storage_fixtures",
    "support.model_fixtures",
    "support.kubelet_fixtures",
]
