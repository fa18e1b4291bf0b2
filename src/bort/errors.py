"""The one exception type that user-facing commands turn into a one-line error."""


class BortError(Exception):
    """A problem the user can fix: the message names the problem and the fix.

    The CLI prints ``bort: error: <message>`` and exits non-zero, with no traceback.
    Library callers can catch it like any other exception.
    """


class TrainingDiverged(BortError):
    """The loss became NaN/inf or grew far beyond its running minimum."""
