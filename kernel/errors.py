"""Errors shown to users as one line: they name the file and what to do."""


class UserError(Exception):
    """An error the user can fix; its message names the file and the fix."""
