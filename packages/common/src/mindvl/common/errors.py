"""Errors that reach a user as one line, never as a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A problem with the user's input (path, recipe, flag): printed as one line, exit code 2."""

    exit_code = 2

    def format_message(self) -> str:  # one line, always
        return " ".join(str(self.message).split())


class ConfigError(UserError):
    """A config file failed validation; the message names the file and the field path."""
