"""Errors shared by the package."""


class UserError(ValueError):
    """A problem with the user's input; the CLI prints it as one line and exits with code 2."""
