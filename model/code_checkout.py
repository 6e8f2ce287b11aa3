"""Run a model tool against another checkout's ``model`` package (``--code DIR``), so that
speed and audio-gap figures of two versions come from one session on one machine."""

from __future__ import annotations

import sys


def use_model_package_from(code_dir: str) -> None:
    """Put ``code_dir`` first on the import path and forget the ``model`` modules imported so
    far; later ``from model...`` imports load that checkout's code."""
    sys.path.insert(0, code_dir)
    for name in [m for m in sys.modules if m == "model" or m.startswith("model.")]:
        del sys.modules[name]
