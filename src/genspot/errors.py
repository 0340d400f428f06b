"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class GenspotError(Exception):
    """An error caused by the user's input (a missing file, a bad option), not by a bug."""
