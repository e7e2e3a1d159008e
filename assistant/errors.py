"""AssistantError: the one base of the errors whose message is meant for a person."""


class AssistantError(Exception):
    """Something a person can fix (a setting, a file, a missing model); the message says how.

    The CLI prints it as one `error: ...` line and the chat window shows it. Any other exception
    is a bug: it reaches the log with its traceback instead of passing as a message.
    """
