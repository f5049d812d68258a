"""The one user-facing error type.

Raise `RewardsmithError` for anything a user can fix (a bad file, an unknown name, a wrong
setting). Its message names the file/line/field, the value and the fix. The CLI turns it into
one clean `error: ...` line and exit code 2; anything else is a bug and keeps its traceback.
"""


class RewardsmithError(Exception):
    """A problem the user can fix; the message says what and how."""
