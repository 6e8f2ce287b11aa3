"""Compatibility shim: the asset registry lives in ``kernel.assets``. Import it from there."""

from kernel.assets import *  # noqa: F401,F403
from kernel.assets import (  # noqa: F401 - private helpers some callers and tests use
    _download, _pins, _pins_path, _record_pin, _registry,
)
