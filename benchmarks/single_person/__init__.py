"""Defaults for user-provided single-person (HDTF-style) benchmark manifests."""
