"""Compatibility shim: the data-root resolver lives in ``kernel.data``. Import it from there.

This name is the kernel module itself (not a copy of its names), so ``monkeypatch.setattr`` on
``anytalker.data`` reaches the code that uses it.
"""

import sys

from kernel import data as _kernel_module

sys.modules[__name__] = _kernel_module
