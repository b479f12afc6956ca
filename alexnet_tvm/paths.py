"""Where the project's shared files live: targets.yaml and tuning_logs/.

A user runs the CLI from a project folder (one holding targets.yaml); failing
that, the checkout the package was installed from is used, so the committed
tuning logs are found from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

TARGETS_FILE = "targets.yaml"
TUNING_LOGS = "tuning_logs"


def project_root() -> Path:
    env = os.environ.get("ALEXNET_TVM_HOME")
    if env:
        return Path(env)
    cwd = Path.cwd()
    if (cwd / TARGETS_FILE).is_file():
        return cwd
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / TARGETS_FILE).is_file():
        return checkout
    return cwd


def default_targets_file() -> Path:
    return project_root() / TARGETS_FILE


def default_tuning_logs() -> Path:
    return project_root() / TUNING_LOGS
