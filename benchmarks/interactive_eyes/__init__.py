"""InteractiveEyes: the AnyTalker two-person interactivity benchmark (29 items, per-speaker audio)."""
