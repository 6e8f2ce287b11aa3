"""Does the bundled model learn lip motion? ``python -m benchmarks.model_quality --json OUT``.

Drives the ``anytalker`` CLI in subprocesses (this layer never imports ``model``): builds a
training set from face tracks of the shared clips (``anytalker train-set``), trains the default
config (``anytalker train``), generates videos for held-out audio (``anytalker generate``) and
scores them with ``metrics``/``curation`` primitives. See ``__main__`` for the protocol.
"""
