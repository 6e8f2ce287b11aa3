"""The bottom layer: errors, version, asset registry, data root and generic media/ffmpeg helpers.

Every other package (curation, pipelines, metrics, model, benchmarks, the ``anytalker`` CLI) may
import ``kernel``; ``kernel`` imports none of them (tests/test_layers.py checks it).
"""

__version__ = "0.1.0"
