"""Compatibility shim: ``UserError`` lives in ``kernel.errors``. Import it from there."""

from kernel.errors import UserError

__all__ = ["UserError"]
