"""One error root. The CLI turns a UsageError into exit code 2, any other BraasError into 1."""


class BraasError(Exception):
    """Something braas-globus refuses or could not do; the message says what to do."""


class UsageError(BraasError, ValueError):
    """Bad input from the user: exit code 2, and nothing was written."""


class NotFoundError(UsageError):
    """An unknown job id, preset or cluster."""


class RunError(BraasError):
    """A run that failed: a render, a missing Blender, a dead backend. Exit code 1."""


class StagingError(RunError):
    """A transfer failed, expired or was paused: the job stays resumable."""


class LoginNeeded(RunError):
    """The Globus login is missing, expired, revoked or too narrow: the user must log in."""
