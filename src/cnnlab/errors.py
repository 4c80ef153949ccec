"""The errors cnnlab raises for mistakes a user can make.

Every such error carries one line that names the cause and the fix. The CLI prints that
line on stderr and exits with code 2; library callers can catch :class:`CnnlabError`
(or ``ValueError``, which it subclasses) like any other bad-argument error.
"""

from __future__ import annotations


class CnnlabError(ValueError):
    """A mistake in what the user asked for; its message is one line with cause and fix."""
