"""A folder that a child process really cannot write to, also when the tests run as root.

chmod stops every user but root, whose CAP_DAC_OVERRIDE writes anywhere, and CI runs as root.
So, as root, the child gives up the capabilities that override file permissions before it
starts: dropped from its bounding set, they are gone from the program it then executes, and
root is held to the folder's mode like any other owner. Nothing is mounted, no user is switched
(the interpreter may live under /root), and the test process itself keeps its privileges.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path

_PR_CAPBSET_DROP = 24  # <linux/prctl.h>
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# <linux/capability.h>: each lets a process pass over a file's permission bits.
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def _drop_permission_overrides() -> None:
    """Run in the child between fork and exec (`preexec_fn`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # fails harmlessly if none
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(errno)}")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Callable[[], None] | None]:
    """Make `folder` read-only (0555) for the duration; yield the `preexec_fn` a child needs to
    be held to that (None for an ordinary user, for whom chmod is enough). The mode is restored
    afterwards, so that the folder can be cleaned up."""
    folder.chmod(0o555)
    try:
        yield _drop_permission_overrides if os.geteuid() == 0 else None
    finally:
        folder.chmod(0o755)
