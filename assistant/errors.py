"""AssistantError: the one base of the errors whose message is meant for a person, and
`explain`, the one line a front end shows for any error."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class AssistantError(Exception):
    """Something a person can fix (a setting, a file, a missing model); the message says how.

    The CLI prints it as one `error: ...` line and the chat window shows it. Any other exception
    is a bug: it reaches the log with its traceback instead of passing as a message.
    """


def explain(error: BaseException, doing: str) -> str:
    """The one line a person is shown for error; a bug's traceback goes to the log instead.

    An AssistantError (or an OSError: a folder, permissions, a full disk) is something the person
    can fix, and its message says how; anything else is a bug, named only by its type.
    """
    if isinstance(error, AssistantError | OSError):
        log.warning("%s failed: %s", doing, error)
        return str(error)
    log.error("%s failed", doing, exc_info=error)
    return f"an internal error ({type(error).__name__}); the details are in the server's log"
