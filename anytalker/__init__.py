"""AnyTalker toolkit: curate talking videos, train the AFCA model, score any model's videos."""

__version__ = "0.1.0"
