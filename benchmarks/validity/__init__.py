"""How right each judgment is, measured on any labelled folder.

Each check is a module of this package that defines ``CHECK`` (its command name),
``add_arguments(parser)`` and ``run(args) -> dict``. Run one as

    python -m benchmarks.validity CHECK --data DIR --json OUT

Nothing in a check may be specific to the shared files: another folder with the same layout
must run as it is.
"""
