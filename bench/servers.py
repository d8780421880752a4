"""The two registries under test, started side by side on 127.0.0.1, and what they cost.

Each server runs in its own process group (so stopping it also reaches the workers granian
forks), logs to a file in the run's temporary folder, and is stopped by its own PID and group.
`TreeSampler` reads /proc every 50 ms while a phase runs: the summed RSS of the server's whole
process tree (granian's main process and its workers) and the CPU time it used.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SAMPLE_INTERVAL = 0.05
VENV_BIN = Path(sys.executable).parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _status(url: str, timeout: float = 2.0) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _clean_env(drop_prefixes: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}


@dataclass
class Server:
    """A registry subprocess (leader of its own process group) and how to talk to it."""

    name: str
    url: str
    log: Path
    popen: subprocess.Popen[bytes] = field(repr=False)
    authorization: str | None = None  # the Authorization header every request carries
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}

    def pids(self) -> list[int]:
        """The leader and every live descendant."""
        return process_tree(self.pid)

    def wait_ready(self, ready: set[int]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        delay = 0.05
        while time.monotonic() < deadline:
            if _status(f"{self.url}/v2/") in ready:
                return
            code = self.popen.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} exited with {code}:\n{log_tail(self.log)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise RuntimeError(f"{self.name} did not answer /v2/ within {STARTUP_TIMEOUT} s")

    def stop(self) -> None:
        """SIGTERM the leader, then SIGKILL whatever is left of its group."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_TIMEOUT)
        # the group id is the leader's pid (start_new_session): it holds only what we started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_TIMEOUT)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _spawn(argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_dockyard(
    base: Path, workers: int | None = None, extra_env: Mapping[str, str] | None = None
) -> Server:
    """`dockyard serve` on a fresh data folder; Basic credentials of the bootstrapped admin."""
    data = base / "data"
    data.mkdir(parents=True)
    port = free_port()
    password = secrets.token_urlsafe(18)
    env = _clean_env(("DOCKYARD_",))
    env["DOCKYARD_ADMIN_PASSWORD"] = password
    env.update(extra_env or {})
    argv = [str(VENV_BIN / "dockyard"), "serve", "--data", str(data), "--listen", f"{HOST}:{port}"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    log = base / "server.log"
    credentials = base64.b64encode(f"admin:{password}".encode()).decode()
    server = Server(
        "dockyard", f"http://{HOST}:{port}", log, _spawn(argv, env, log), f"Basic {credentials}"
    )
    try:
        server.wait_ready({200, 401})
    except BaseException:
        server.stop()
        raise
    return server


def start_distribution(base: Path) -> Server:
    """CNCF distribution (Debian's `docker-registry`) without auth, as in shared/TESTING.md."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run scripts/test-deps.sh")
    root = base / "data"
    root.mkdir(parents=True)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "secret": secrets.token_hex(16)},
    }
    config_path = base / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    log = base / "server.log"
    env = _clean_env(("REGISTRY_",))  # REGISTRY_* variables would override the config
    popen = _spawn([binary, "serve", str(config_path)], env, log)
    server = Server("distribution", f"http://{HOST}:{port}", log, popen)
    try:
        server.wait_ready({200})
    except BaseException:
        server.stop()
        raise
    return server


# --- /proc ----------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (from /proc/<pid>/task/<tid>/children), bounded."""
    found: list[int] = []
    queue = [root]
    while queue and len(found) < 4096:
        pid = queue.pop()
        if pid in found:
            continue
        found.append(pid)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                    queue.extend(int(child) for child in f.read().split())
    return found


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm") as f:
            total += int(f.read().split()[1]) * PAGE_SIZE
    return total


def pss_bytes(pids: Sequence[int]) -> int:
    """Proportional set size: pages shared by forked workers are counted once, not per process."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of live processes (and of their reaped children)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
            # fields[0] is state (field 3): utime, stime, cutime, cstime are fields 14-17
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, all processes) since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def wait_for_quiet(limit: float, threshold: float = 0.3, window: float = 0.5) -> float:
    """Wait (at most `limit` s) until the machine is nearly idle: less than `threshold` of a
    core busy over `window` s while our servers rest. Returns the busy cores seen last."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - before) / window
        if busy < threshold or time.monotonic() >= deadline:
            return busy


@dataclass
class Usage:
    """What a server's process tree (and the whole machine) used during one phase."""

    peak_rss: int = 0
    start_rss: int = 0  # when the phase began: what earlier phases left is not this one's
    cpu: float = 0.0
    machine_busy: float = 0.0
    samples: int = 0


class TreeSampler:
    """Samples a server's process tree every 50 ms in a thread while a phase runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.usage = Usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        # bounded: a phase longer than an hour is a bug, not a benchmark
        for _ in range(int(3600 / SAMPLE_INTERVAL)):
            rss = rss_bytes(self.server.pids())
            self.usage.peak_rss = max(self.usage.peak_rss, rss)
            self.usage.samples += 1
            if self._stop.wait(SAMPLE_INTERVAL):
                return

    def __enter__(self) -> Usage:
        self._cpu_start = cpu_seconds(self.server.pids())
        self.usage.start_rss = rss_bytes(self.server.pids())
        self._busy_start = machine_busy_seconds()
        self._thread.start()
        return self.usage

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.usage.cpu = cpu_seconds(self.server.pids()) - self._cpu_start
        self.usage.machine_busy = machine_busy_seconds() - self._busy_start


@contextlib.contextmanager
def sampling(server: Server) -> Iterator[Usage]:
    with TreeSampler(server) as usage:
        yield usage
