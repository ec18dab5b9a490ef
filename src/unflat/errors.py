"""Errors that are the user's to fix: the CLI prints them as one line (tracebacks only with --debug)."""


class UserError(Exception):
    """Bad input, bad config or a bad environment; the message says what is wrong and how to fix it."""


class ConfigError(UserError):
    """A config field has an invalid value. The message names the field."""

    def __init__(self, field: str, message: str) -> None:
        flag = "--" + field.replace("_", "-")
        super().__init__(f"{flag}: {message}")
        self.field = field


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, unsafe or from an incompatible version."""
