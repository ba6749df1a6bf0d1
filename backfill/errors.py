"""Every error moe-backfill raises, in one tree.

    BackfillError                    base; str() is a one-line, secret-free message
    ├── ConfigError                  bad config file, key, value or CLI argument  (exit 2)
    ├── ManifestError                manifest unreadable or corrupt in the middle (exit 2)
    ├── LockedError                  another run holds the manifest lock          (exit 75)
    ├── StorageError                 local disk: disk full, I/O error, ...: stops the run (exit 1)
    │   ├── FileStorageError         one file's or folder's path: permission, a directory
    │   │                            in the way, a link out; fails that file, run goes on
    │   └── OutputDirError           output/manifest dir unusable at start-up     (exit 2)
    └── RemoteError                  one request's failure, raised by client.py
        ├── TransportError           no usable response: retryable
        │   ├── ConnectError         connection refused / DNS / TLS handshake
        │   ├── ConnectionLost       reset or closed mid-response
        │   └── RequestTimeout        connect, idle-read or whole-file deadline passed
        ├── CertificateError         the server's TLS certificate is not trusted (not
        │                            retried: set [http] ca_bundle or --cacert)
        ├── ProxyError               the proxy refused the CONNECT (status, e.g. 407)
        ├── RedirectError            redirect refused (other origin, loop, downgrade)
        └── BodyError                a 200 whose body is not the report
            ├── BodyTooLarge         larger than max_file_bytes (not retried)
            └── InvalidBody          truncated, length mismatch, not a zip (retried)

aiohttp and OS errors are translated into these in client.py, store/ and journal/ with
``raise ... from exc`` and go no further (:func:`os_error_reason` gives an OSError's
short, path-free reason). Messages never contain credentials: the
translation keeps only the exception class name and the URL path.
"""

from __future__ import annotations

import errno
import os


class BackfillError(Exception):
    """Base of all moe-backfill errors."""

    exit_code: int = 1


class ConfigError(BackfillError):
    """The configuration or the command line is wrong. One line per problem."""

    exit_code = 2

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ManifestError(BackfillError):
    """The manifest cannot be trusted (a corrupt line that is not the last)."""

    exit_code = 2


class LockedError(BackfillError):
    """Another run holds the manifest lock."""

    exit_code = 75


class StorageError(BackfillError):
    """Writing to the output directory failed (permissions, disk full, ...)."""

    exit_code = 1


class FileStorageError(StorageError):
    """The storage error of one file or one folder (a permission, a directory at the
    file's path, a path leading out): that file fails with this reason; the run goes on.
    Only a run-wide fault (disk full, quota, read-only or failing file system, the
    output directory gone) stops the run: :func:`storage_error` tells them apart."""


# A fault of the whole destination, not of one path: every later file would fail too.
RUN_WIDE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO})


def storage_error(path: object, exc: OSError) -> StorageError:
    """``"<path>: <reason>"``, as a FileStorageError unless the errno is run-wide."""
    kind = StorageError if exc.errno in RUN_WIDE_ERRNOS else FileStorageError
    return kind(f"{path}: {os_error_reason(exc)}")


class OutputDirError(StorageError):
    """The output or manifest directory cannot be created or written, found before
    anything is written: bad input, like a bad config (exit 2)."""

    exit_code = 2


class RemoteError(BackfillError):
    """One request failed. ``kind`` is a short stable reason for summaries."""

    kind = "remote"


class TransportError(RemoteError):
    kind = "transport"


class ConnectError(TransportError):
    kind = "connect"


class ConnectionLost(TransportError):
    kind = "connection lost"


class RequestTimeout(TransportError):
    kind = "timeout"


class CertificateError(RemoteError):
    """The certificate chain failed verification. Retrying cannot help; the message is the
    reason a summary shows ("certificate verify failed for <host>: set ca_bundle")."""

    kind = "certificate"


class ProxyError(RemoteError):
    """The proxy answered the CONNECT with an error status (407: wrong proxy credentials)."""

    kind = "proxy"


class RedirectError(RemoteError):
    kind = "redirect refused"


class BodyError(RemoteError):
    kind = "invalid body"


class BodyTooLarge(BodyError):
    kind = "too large"


class InvalidBody(BodyError):
    kind = "invalid body"


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one meaningful error inside a task group's (nested) exception group:
    our own error if there is one, else the first."""
    flat: list[BaseException] = []

    def walk(g: BaseExceptionGroup[BaseException]) -> None:
        for exc in g.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                flat.append(exc)

    walk(group)
    for exc in flat:
        if isinstance(exc, BackfillError):
            return exc
    return flat[0] if flat else group


_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EFBIG: "disk full (file too large for the file system)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "name too long",
    errno.EIO: "I/O error",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
}


def os_error_reason(exc: OSError) -> str:
    """A short reason for an OSError, without the paths or text it may carry."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return type(exc).__name__
