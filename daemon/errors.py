"""Exit codes and the error every command raises for a wrong command line."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""
