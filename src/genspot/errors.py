"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class GenspotError(Exception):
    """An error caused by the user's input (a missing file, a bad option), not by a bug."""


def quote(value: object, limit: int = 40) -> str:
    """A user-given value for an error message: repr'd, and cut to `limit` characters with its
    length said (an unknown 900 KB option is never echoed back whole)."""
    s = repr(value)
    if len(s) <= limit:
        return s
    return f"{s[: limit - 4]}...{s[0]} ({len(str(value)):,} characters)"
