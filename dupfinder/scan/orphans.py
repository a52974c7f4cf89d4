"""Workers that never outlive their scan.

A hashing worker whose scan died (kill -9 included) would wait for tasks forever, holding
the terminal's pipes: each worker arms the kernel to kill it with its parent, or watches its
parent where the kernel cannot.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (Linux), or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def die_with_parent(scan_pid: int) -> None:
    """Make sure this worker dies when the scan's main process dies, even by kill -9
    (otherwise it would wait for tasks forever, holding the terminal's pipes).

    On Linux, PR_SET_PDEATHSIG makes the kernel kill us when our *direct* parent dies. With
    ``fork`` and ``spawn`` that parent is the scan process itself; with ``forkserver`` it is
    the fork server, which the scan started and which exits as soon as the scan dies (its
    end of the server's "alive" pipe closes), so the signal reaches us through it. The
    parent may die before prctl() takes effect; we then have been re-parented to a reaper,
    which is neither the scan nor a child of it, and we leave at once. Elsewhere a watchdog
    thread polls the parent instead."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
        if parent != scan_pid and _parent_of(parent) != scan_pid:
            os._exit(1)  # re-parented: neither the scan nor the fork server it started
        return
    threading.Thread(target=_watch_scan, args=(scan_pid, parent), daemon=True,
                     name="dupfinder-watchdog").start()


def _watch_scan(scan_pid: int, parent: int) -> None:
    """Exit as soon as our parent changes (it died: the scan, or the fork server that dies
    with the scan) or the scan's pid is gone: the fallback where prctl does not exist."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        try:
            os.kill(scan_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass
        time.sleep(0.5)
