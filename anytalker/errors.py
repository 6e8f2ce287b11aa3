"""Compatibility shim: ``UserError`` lives in ``kernel.errors``. Import it from there.

This name is the kernel module itself (not a copy of its names), so ``monkeypatch.setattr`` on
``anytalker.errors`` reaches the code that uses it.
"""

import sys

from kernel import errors as _kernel_module

sys.modules[__name__] = _kernel_module
