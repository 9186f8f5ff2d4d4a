"""The one exception type for a user's mistake: the CLI prints it as one line, exit code 2."""


class NinError(Exception):
    """Bad input from the user (a missing file, an unknown preset, ...).

    The message is one line that names the thing, what was expected and what to do.
    """

    exit_code = 2
