"""The one exception type that reaches the user as a single line and exit code 2."""


class UserError(Exception):
    """A mistake in the user's input (file, name, option): printed as one line, exit code 2."""

    exit_code = 2
