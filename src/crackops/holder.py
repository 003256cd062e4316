"""``pid@host``: how the registry names the process that holds something (a pending submission,
a scheduler call in flight), and whether that process is gone."""

from __future__ import annotations

import os
import socket


def this_process() -> str:
    """``<pid>@<host>`` of the calling process."""
    return f"{os.getpid()}@{socket.gethostname()}"


def gone(holder: str | None) -> bool:
    """Whether the process named by ``holder`` has ended (known on its own host only: another
    host's process, or a name that is not ``pid@host``, is never called gone)."""
    pid, _, host = (holder or "").partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
