"""Benchmarks: manifests (InteractiveEyes, user single-person sets), submission validation,
scoring with the pinned metrics of ``metrics/``, and the leaderboard. Never imports ``model/``."""
