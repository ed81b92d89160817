"""The one project exception: every foreign failure is wrapped into it with context."""


class StylehostError(Exception):
    """A user-facing error. The CLI prints its message on one line and exits with status 2."""
