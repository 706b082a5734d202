"""Finding and killing the processes a sandboxed program left behind: by uid (tiers with a
dedicated uid per worker) and by descent (orphans that escaped with setsid are reparented to
the worker, a child subreaper)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def pids_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def kill_descendants(root: int, keep: frozenset[int] = frozenset()) -> None:
    """SIGKILL every descendant of ``root``: orphans that escaped with setsid are reparented to
    it (a child subreaper), so this reaches them in tiers without a uid of their own. ``keep``:
    the worker's own helpers (a warm compiler), spared with their descendants."""
    for _ in range(200):
        parent = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat_line = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat_line.rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parent[int(entry)] = int(fields[1])
        doomed = [
            p
            for p in parent
            if p not in keep
            and _descends(p, root, parent)
            and not any(_descends(p, k, parent) for k in keep)
        ]
        if not doomed:
            return
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reap()
        time.sleep(0.005)


def _descends(pid: int, root: int, parent: dict[int, int]) -> bool:
    seen = 0
    while pid in parent and seen < 1000:
        pid = parent[pid]
        if pid == root:
            return True
        seen += 1
    return False


def reap() -> None:
    """Collect orphans reparented to us (we are a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_user(uid: int) -> None:
    """SIGKILL every process of ``uid``: a helper becomes that uid and calls kill(-1)."""
    for _ in range(200):
        if not pids_of(uid):
            break
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        reap()
        time.sleep(0.005)
    reap()


def exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
