"""AnyTalker toolkit CLI: curate talking videos, train the AFCA model, score any model's videos.

The version lives in the kernel package (the bottom layer); it is re-exported here for the CLI.
"""

from kernel import __version__

__all__ = ["__version__"]
