"""Layered sandbox for running model-generated (hostile) programs.

Tiers, strongest first, chosen by probing at start-up and named in every report:

- ``bwrap+uid``: bubblewrap with every namespace unshared (user, pid, net, ipc, uts, cgroup),
  no network, read-only system dirs, private work dir and sized tmpfs, cleared environment, no
  capabilities, run as a dedicated unprivileged uid per worker (needs root); plus cgroup
  memory/pids limits where the controllers are writable.
- ``bwrap``: the same namespaces without root: programs run as the evaluator's own uid.
- ``uid``: root without working namespaces: dedicated uid, rlimits, cgroups; no network
  isolation.
- ``none``: no isolation at all; refused unless the caller passes ``unsafe``.

Every tier sets rlimits (CPU, DATA rather than AS because Java, node and Go reserve large
address spaces, NPROC, FSIZE, NOFILE, CORE 0), caps output, enforces a wall-clock timeout and
afterwards kills every process of the worker's uid; workers are child subreapers so orphans
that escape with setsid are reaped.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import os
import pwd
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from t5x_xfer.codeeval.processes import exited, kill_descendants, kill_user, pids_of, reap

TIERS = ("bwrap+uid", "bwrap", "uid", "none")
UID_BASE = int(os.environ.get("T5X_CODEEVAL_UID_BASE", "61000"))
UID_SLOTS = 1000
INNER_WORKDIR = "/w"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


class SandboxRefused(RuntimeError):
    """No real isolation is possible and the caller did not accept running unsafely."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-run resource limits. ``memory_mb`` caps RLIMIT_DATA and, where cgroups are
    writable, the cgroup's memory (which also covers shared memory and tmpfs)."""

    memory_mb: int = 4096
    nproc: int = 256
    nofile: int = 1024
    fsize_mb: int = 256
    output_bytes: int = 1 << 20
    tmpfs_mb: int = 256

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"Limits.{field.name} must be positive")


@dataclasses.dataclass(frozen=True)
class Probe:
    """What isolation this machine offers."""

    tier: str
    detail: str
    cgroup: str  # "v1", "v2" or "" (none writable)


@dataclasses.dataclass
class Outcome:
    """How one sandboxed command ended."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    output_limited: bool
    wall_s: float


def prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _bwrap_base() -> list[str]:
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--ro-bind",
        "/etc",
        "/etc",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def _cgroup_version() -> str:
    """Which cgroup hierarchy we can create limits in ("" when none is writable)."""
    if os.geteuid() != 0:
        return ""
    if Path("/sys/fs/cgroup/cgroup.controllers").is_file():
        root = Path("/sys/fs/cgroup")
        ok = {"memory", "pids"} <= set((root / "cgroup.controllers").read_text().split())
        return "v2" if ok and os.access(root, os.W_OK) else ""
    ok = all(os.access(f"/sys/fs/cgroup/{c}", os.W_OK) for c in ("memory", "pids"))
    return "v1" if ok else ""


def probe(force: str | None = None) -> Probe:
    """Find the strongest tier that works here (or check that ``force`` does)."""
    root = os.geteuid() == 0
    cgroup = _cgroup_version()
    bwrap = shutil.which("bwrap")
    bwrap_ok = False
    why = "bubblewrap not installed (apt-get install bubblewrap)"
    if bwrap:
        with _probe_slot(root) as slot:
            proc = subprocess.run(
                [bwrap, *_bwrap_base(), "/usr/bin/true"],
                capture_output=True,
                text=True,
                preexec_fn=_credentials(slot.uid) if slot.uid is not None else None,
            )
        bwrap_ok = proc.returncode == 0
        why = f"bwrap failed: {proc.stderr.strip()[:200]}"
    candidates = {
        "bwrap+uid": root and bwrap_ok,
        "bwrap": bwrap_ok,
        "uid": root,
        "none": True,
    }
    tier = force or next(t for t in TIERS if candidates[t])
    if tier not in candidates:
        raise ValueError(f"unknown sandbox tier {tier!r}; allowed: {list(TIERS)}")
    if not candidates[tier]:
        raise SandboxRefused(f"sandbox tier {tier!r} is not available here ({why})")
    parts = {
        "bwrap+uid": "namespaces user,pid,net,ipc,uts,cgroup; uid per worker",
        "bwrap": "namespaces user,pid,net,ipc,uts,cgroup; evaluator's own uid",
        "uid": f"uid per worker, NO network isolation ({why})",
        "none": "NO isolation",
    }[tier]
    use_cgroup = cgroup if tier in ("bwrap+uid", "uid") else ""
    extra = f"; cgroup {use_cgroup} memory+pids" if use_cgroup else "; no cgroup"
    return Probe(tier, parts + extra + "; rlimits", use_cgroup)


def check_allowed(found: Probe, unsafe: bool) -> None:
    """Refuse to run hostile code without isolation unless explicitly allowed."""
    if found.tier == "none" and not unsafe:
        raise SandboxRefused(
            "no real isolation is possible here (no bubblewrap namespaces, not root); "
            "install bubblewrap or run as root, or pass --unsafe to execute generated code "
            "with only rlimits"
        )


def _credentials(uid: int):
    def switch() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return switch


# --- worker slots: a dedicated uid, a scratch dir and cgroups per worker ---


@dataclasses.dataclass
class Slot:
    """A worker's exclusive resources; the lock keeps concurrent evaluators apart."""

    index: int
    uid: int | None
    dir: Path
    lock_fd: int
    cgroups: list[Path] = dataclasses.field(default_factory=list)

    def release(self) -> None:
        os.close(self.lock_fd)


def scratch_root() -> Path:
    """Where work dirs live: reachable (o+x) by the sandbox users, listable only by root."""
    if os.geteuid() == 0:
        base = Path("/var/tmp/t5x_codeeval")
    else:
        base = Path(tempfile.gettempdir()) / f"t5x_codeeval-{os.geteuid()}"
    base.mkdir(mode=0o711, exist_ok=True)
    os.chmod(base, 0o711)
    (base / "locks").mkdir(mode=0o700, exist_ok=True)
    return base


def acquire_slot(with_uid: bool) -> Slot:
    """Lock the first free slot. With ``with_uid`` the slot's uid must be no real account."""
    base = scratch_root()
    for index in range(UID_SLOTS):
        uid = UID_BASE + index if with_uid else None
        if uid is not None:
            try:
                pwd.getpwuid(uid)
                continue  # a real account: never ours to kill
            except KeyError:
                pass
        fd = os.open(base / "locks" / f"slot{index}", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        slot_dir = base / f"slot{index}"
        slot_dir.mkdir(mode=0o711, exist_ok=True)
        if uid is not None:
            kill_user(uid)  # leftovers of a crashed earlier run
        return Slot(index, uid, slot_dir, fd)
    raise RuntimeError(f"all {UID_SLOTS} sandbox slots under {base} are in use")


@contextlib.contextmanager
def _probe_slot(root: bool):
    slot = acquire_slot(with_uid=root)
    try:
        yield slot
    finally:
        slot.release()


def setup_cgroups(slot: Slot, version: str, limits: Limits) -> None:
    """Create the slot's cgroup(s) with memory (incl. shared memory) and pids limits."""
    mem = str(limits.memory_mb << 20)
    if version == "v1":
        groups = {
            Path("/sys/fs/cgroup/memory/t5x_codeeval") / f"slot{slot.index}": {
                "memory.limit_in_bytes": mem,
                "memory.memsw.limit_in_bytes": mem,
            },
            Path("/sys/fs/cgroup/pids/t5x_codeeval") / f"slot{slot.index}": {
                "pids.max": str(limits.nproc)
            },
        }
    elif version == "v2":
        parent = Path("/sys/fs/cgroup/t5x_codeeval")
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
        groups = {
            parent / f"slot{slot.index}": {
                "memory.max": mem,
                "memory.swap.max": "0",
                "pids.max": str(limits.nproc),
            }
        }
    else:
        return
    for path, settings in groups.items():
        path.mkdir(parents=True, exist_ok=True)
        swap = path / "memory.memsw.limit_in_bytes"
        if swap.exists():  # v1 needs memory <= memory+swap at every step: raise that first
            with contextlib.suppress(OSError):
                swap.write_text(mem)
        for name, value in settings.items():
            if (path / name).exists():
                (path / name).write_text(value)
        slot.cgroups.append(path)


# --- running ---


class Sandbox:
    """Runs commands for one worker slot under the probed tier."""

    def __init__(
        self, found: Probe, slot: Slot, limits: Limits, ro_binds: Sequence[str] = ()
    ) -> None:
        self.tier = found.tier
        self.slot = slot
        self.limits = limits
        self.ro_binds = [p for p in ro_binds if os.path.exists(p)]
        self.bwrap = shutil.which("bwrap") if self.tier.startswith("bwrap") else None
        self.uid = slot.uid if self.tier in ("bwrap+uid", "uid") else None
        # Processes of the worker's own that cleaning up after a program must spare.
        self.keep_alive: Callable[[], frozenset[int]] = frozenset
        if found.cgroup:
            setup_cgroups(slot, found.cgroup, limits)

    @property
    def isolated_fs(self) -> bool:
        return self.bwrap is not None

    def inner(self, host: Path, inner: str) -> str:
        """The path a program sees for ``host`` (bind mounted at ``inner`` under bwrap)."""
        return inner if self.bwrap else str(host)

    def _preexec(self, cpu_s: int):
        limits = self.limits
        procs = [str(p / "cgroup.procs") for p in self.slot.cgroups]
        nproc = limits.nproc
        if self.uid is None and os.geteuid() != 0:
            # RLIMIT_NPROC counts all of the evaluator's own processes in shared-uid tiers.
            nproc += len(pids_of(os.geteuid()))
        rlimits = [
            (resource.RLIMIT_CPU, cpu_s),
            (resource.RLIMIT_DATA, limits.memory_mb << 20),
            (resource.RLIMIT_NPROC, nproc),
            (resource.RLIMIT_FSIZE, limits.fsize_mb << 20),
            (resource.RLIMIT_NOFILE, limits.nofile),
            (resource.RLIMIT_CORE, 0),
        ]
        uid = self.uid

        def setup() -> None:
            os.setsid()
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            for res, value in rlimits:
                resource.setrlimit(res, (value, value))
            if uid is not None:
                _credentials(uid)()
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

        return setup

    def _argv(
        self, argv: Sequence[str], workdir: Path, writable: bool, env: Mapping[str, str], rw
    ) -> list[str]:
        if not self.bwrap:
            return list(argv)
        args = [self.bwrap, *_bwrap_base()]
        for path in self.ro_binds:
            args += ["--ro-bind", path, path]
        size = str(self.limits.tmpfs_mb << 20)
        args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
        args += ["--bind" if writable else "--ro-bind", str(workdir), INNER_WORKDIR]
        for host, inner in rw.items():
            args += ["--bind", str(host), inner]
        args += ["--chdir", INNER_WORKDIR, "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args + list(argv)

    def run(
        self,
        argv: Sequence[str],
        *,
        workdir: Path,
        timeout_s: float,
        env: Mapping[str, str],
        writable: bool = False,
        rw_binds: Mapping[Path, str] | None = None,
        tmp: Path | None = None,
    ) -> Outcome:
        """Run ``argv`` (paths as the program sees them) and kill everything it left behind.

        ``tmp`` is HOME/TMPDIR in tiers without a private tmpfs.
        """
        home = "/tmp" if self.bwrap else str(tmp or workdir)
        full_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        cmd = self._argv(argv, workdir, writable, full_env, rw_binds or {})
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=full_env if not self.bwrap else {"PATH": "/usr/bin:/bin"},
            preexec_fn=self._preexec(int(timeout_s) + 5),
        )
        outcome = self._collect(proc, start, timeout_s)
        self._kill(proc)
        outcome.returncode = proc.wait()
        outcome.wall_s = time.monotonic() - start
        return outcome

    def _collect(self, proc: subprocess.Popen, start: float, timeout_s: float) -> Outcome:
        deadline = start + timeout_s
        cap = self.limits.output_bytes
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        sel = selectors.DefaultSelector()
        for f in (proc.stdout, proc.stderr):
            sel.register(f, selectors.EVENT_READ)
        timed_out = limited = False
        exited_at = None
        total = 0
        while sel.get_map() and not limited:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and exited(proc.pid):
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                break  # a background child keeps the pipes open; it is killed below
            for key, _ in sel.select(timeout=min(0.1, deadline - now)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                total += len(chunk)
                keep = max(0, cap - (total - len(chunk)))
                bufs[key.fd] += chunk[:keep]
                if total > cap:
                    limited = True
                    break
        sel.close()
        while not (timed_out or limited or exited(proc.pid)):
            timed_out = time.monotonic() >= deadline
            time.sleep(0.005)
        proc.stdout.close()
        proc.stderr.close()
        out, err = (bytes(b).decode("utf-8", "replace") for b in bufs.values())
        return Outcome(0, out, err, timed_out, limited, 0.0)

    def _kill(self, proc: subprocess.Popen) -> None:
        # Not yet reaped (see _exited), so the process group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if self.uid is not None:
            kill_user(self.uid)
        elif not self.bwrap:  # bwrap's pid namespace already took everything down with it
            kill_descendants(os.getpid(), keep=self.keep_alive())
        reap()
