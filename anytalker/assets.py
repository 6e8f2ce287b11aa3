"""Compatibility shim: the asset registry lives in ``kernel.assets``. Import it from there.

This name is the kernel module itself (not a copy of its names), so ``monkeypatch.setattr`` on
``anytalker.assets`` reaches the code that uses it.
"""

import sys

from kernel import assets as _kernel_module

sys.modules[__name__] = _kernel_module
