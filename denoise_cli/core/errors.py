"""The one exception type users see: its message is printed as a single line on stderr."""


class DenoiseError(Exception):
    """A problem with the user's input or settings (bad file, missing device, bad option)."""


class UsageError(DenoiseError):
    """The command line or config asks for something impossible (exit status 2): nothing was processed."""
