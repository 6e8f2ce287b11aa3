"""Compatibility shim: the data-root resolver lives in ``kernel.data``. Import it from there."""

from kernel.data import REPO_ROOT, candidate_roots, resolve_data_root

__all__ = ["REPO_ROOT", "candidate_roots", "resolve_data_root"]
