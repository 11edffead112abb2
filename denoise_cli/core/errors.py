"""The exceptions users see, and plain words for the operating system's errors.

A :class:`DenoiseError` message is printed as one line on stderr; :class:`UsageError` (exit status 2) means nothing
was processed. Python class names never reach the user unless ``DENOISE_DEBUG`` is set.
"""
from __future__ import annotations

import errno
import os


class DenoiseError(Exception):
    """A problem with the user's input or settings (bad file, missing device, bad option)."""


class UsageError(DenoiseError):
    """The command line or config asks for something impossible (exit status 2): nothing was processed."""


#: What an errno means, in words a user reads.
_PLAIN_OS_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EEXIST: "already exists",
    errno.EIO: "input/output error (a failing disk or network share?)",
}


def debug_enabled() -> bool:
    """True when ``DENOISE_DEBUG`` is set: messages then keep Python's class names (and the CLI shows tracebacks)."""
    return bool(os.environ.get("DENOISE_DEBUG"))


def plain_reason(exc: BaseException) -> str:
    """One line saying what went wrong, in plain words: an OSError by its errno, out-of-memory by name, anything else
    by its first line of text; Python's class name is added only with ``DENOISE_DEBUG``."""
    if isinstance(exc, OSError) and exc.errno in _PLAIN_OS_ERRORS:
        text = _PLAIN_OS_ERRORS[exc.errno]
    elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        text = "not enough memory for this image"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror[0].lower() + exc.strerror[1:]
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else "unexpected failure"
    if isinstance(exc, OSError) and exc.filename and exc.errno in _PLAIN_OS_ERRORS:
        text = f"{exc.filename}: {text}"
    return f"{text} [{type(exc).__name__}]" if debug_enabled() else text
