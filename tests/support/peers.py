"""Real peers over loopback as pytest fixtures: CNCF distribution, skopeo, podman, and
dockyard's own server as a subprocess (PostgreSQL is in `support.postgres`).

Rules kept here: everything binds 127.0.0.1 on a free port; every wait is bounded polling;
every subprocess has a timeout; whatever a fixture starts it stops by PID (or its own process
group) at teardown. When a test fails, the tail of each server log it used is attached to the
failure report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
DOCKYARD_BIN = VENV_BIN / "dockyard"
"""The console script under test; read at call time so a test can point it elsewhere."""

COMMAND_TIMEOUT = 120.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 80

_server_logs = pytest.StashKey[list[tuple[str, Path]]]()


# --- helpers ---------------------------------------------------------------------------------


class CommandError(subprocess.CalledProcessError):
    """A command failed; unlike CalledProcessError, the message shows stdout and stderr."""

    def __str__(self) -> str:
        command = " ".join(str(part) for part in self.cmd)
        return (
            f"command exited with {self.returncode}: {command}\n"
            f"--- stdout ---\n{self.stdout or ''}\n--- stderr ---\n{self.stderr or ''}"
        )


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout, capturing text; raise `CommandError` if it fails."""
    argv = [str(arg) for arg in args]
    try:
        result = subprocess.run(
            argv,
            input=input,
            env=None if env is None else dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"command timed out after {timeout} s: {' '.join(argv)}\n"
            f"--- stdout ---\n{_text(error.stdout)}\n--- stderr ---\n{_text(error.stderr)}"
        ) from error
    if check and result.returncode != 0:
        raise CommandError(result.returncode, argv, result.stdout, result.stderr)
    return result


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that no other
    pytest-xdist worker of this run can be handed: each worker takes only the ports of its own
    class (port // 2 % workers: Linux hands out odd ports for bind(0), even ones for connect).
    Otherwise two workers could start servers on the same port, and listeners with
    SO_REUSEPORT would silently share it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = int(worker.removeprefix("gw")) % workers
    for _ in range(100 * workers):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port // 2 % workers == mine:
            return port
    raise AssertionError(f"no free port of worker {worker} ({mine} of {workers})")


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    abort: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll `condition` until it holds; fail after `timeout` s or as soon as `abort` says why."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        reason = abort()
        if reason is not None:
            raise AssertionError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.5)


_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, *, timeout: float = 2.0) -> int | None:
    """The status of GET `url`, or None if nothing answers (no proxies, ever)."""
    try:
        with _no_proxy.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' if it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _attach_log(request: pytest.FixtureRequest, label: str, path: Path) -> None:
    request.node.stash.setdefault(_server_logs, []).append((label, path))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the tail of every server log the test used to its report."""
    report: pytest.TestReport = yield
    if report.failed:
        for label, path in item.stash.get(_server_logs, []):
            tail = log_tail(path)
            # Only our "--- starting" markers: the server itself said nothing.
            if any(line and not line.startswith(_MARKER) for line in tail.splitlines()):
                report.sections.append((f"{label} log (tail of {path})", tail))
    return report


_MARKER = "--- starting: "


class _Process:
    """A server subprocess in its own process group, logging to a file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.argv = list(argv)
        with log.open("ab") as log_file:
            log_file.write(f"{_MARKER}{' '.join(self.argv)}\n".encode())
            log_file.flush()
            # A process group of its own, so stop/kill also reach workers it forks (granian).
            self.popen = subprocess.Popen(
                self.argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> str | None:
        code = self.popen.poll()
        return None if code is None else f"process exited with {code}"

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the leader; SIGKILL the group after `timeout` s and mop up what remains."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT)

    def _signal_group(self, signum: int) -> None:
        # The group id is the leader's pid (start_new_session); it only holds what we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


def _clean_env(drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not any(key.startswith(prefix) for prefix in drop_prefixes)
    }


# --- CNCF distribution (docker-registry) -----------------------------------------------------


@dataclass
class DockerRegistry:
    """A running `docker-registry` (CNCF distribution 2.8) on 127.0.0.1."""

    host: str
    url: str
    root: Path
    log: Path
    users: dict[str, str]
    process: _Process = field(repr=False)

    @property
    def creds(self) -> str | None:
        """`user:password` of the first user, for `--creds`, or None without auth."""
        for user, password in self.users.items():
            return f"{user}:{password}"
        return None

    def stop(self) -> None:
        self.process.stop()

    def requests(self, since: int = 0) -> Counter[tuple[str, str, int]]:
        """(method, kind, status) of the requests in the access log from byte `since` on
        (start with `access_log=True`); kind is `ping`, `tags`, `referrers`, `uploads`,
        `manifests` or `blobs`. `log.stat().st_size` marks where to start."""
        with self.log.open("rb") as file:
            file.seek(since)
            lines = file.read().decode(errors="replace").splitlines()
        found: Counter[tuple[str, str, int]] = Counter()
        for line in lines:
            match = _ACCESS.search(line)
            if match is not None:
                method, path, status = match.groups()
                found[(method, _kind(path), int(status))] += 1
        return found


_ACCESS = re.compile(r'"([A-Z]+) (/v2/\S*) HTTP/[0-9.]+" ([0-9]{3}) ')


def _kind(path: str) -> str:
    path = path.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        return "ping"
    for part, kind in (
        ("/tags/list", "tags"),
        ("/referrers/", "referrers"),
        ("/blobs/uploads/", "uploads"),
        ("/manifests/", "manifests"),
        ("/blobs/", "blobs"),
    ):
        if part in path:
            return kind
    return path


DockerRegistryFactory = Callable[..., DockerRegistry]


def _start_docker_registry(
    base: Path,
    *,
    users: Mapping[str, str] | None = None,
    log_level: str = "error",
    access_log: bool = False,
) -> DockerRegistry:
    port = free_port()
    root = base / "data"
    root.mkdir(parents=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": log_level, "accesslog": {"disabled": not access_log}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"{HOST}:{port}", "secret": secrets.token_hex(16)},
    }
    if users:
        htpasswd = base / "htpasswd"
        for index, (user, password) in enumerate(users.items()):
            # bcrypt cost 4: the default cost 12 costs ~250 ms on every request.
            flags = "-cbB" if index == 0 else "-bB"
            run(["htpasswd", flags, "-C", "4", htpasswd, user, password])
        config["auth"] = {"htpasswd": {"realm": "docker-registry", "path": str(htpasswd)}}
    config_path = base / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    log = base / "registry.log"
    # REGISTRY_* variables override the config file: keep the caller's out.
    env = _clean_env(drop_prefixes=("REGISTRY_",))
    process = _Process(["docker-registry", "serve", str(config_path)], env, log)
    url = f"http://{HOST}:{port}"
    ready = {401} if users else {200}
    try:
        wait_until(
            lambda: http_status(f"{url}/v2/") in ready,
            timeout=STARTUP_TIMEOUT,
            what=f"docker-registry on {HOST}:{port} to answer /v2/",
            abort=process.exited,
        )
    except AssertionError as error:
        process.stop()
        raise AssertionError(f"{error}\n--- {log} ---\n{log_tail(log)}") from None
    return DockerRegistry(
        host=f"{HOST}:{port}", url=url, root=root, log=log, users=dict(users or {}), process=process
    )


@pytest.fixture
def docker_registry_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerRegistryFactory]:
    """Start CNCF distribution registries: `factory(users={"alice": "pw"}, log_level="error",
    access_log=False)`; with `access_log`, every request is a line of the log (`requests`).

    With `users`, the registry asks for basic auth (htpasswd, bcrypt cost 4). Each registry has
    its own temporary storage and port, delete enabled; all stop at teardown.
    """
    started: list[DockerRegistry] = []

    def start(
        *,
        users: Mapping[str, str] | None = None,
        log_level: str = "error",
        access_log: bool = False,
    ) -> DockerRegistry:
        base = tmp_path_factory.mktemp("docker-registry")
        registry = _start_docker_registry(
            base, users=users, log_level=log_level, access_log=access_log
        )
        started.append(registry)
        _attach_log(request, f"docker-registry {registry.host}", registry.log)
        return registry

    yield start
    for registry in reversed(started):
        registry.stop()


@pytest.fixture
def docker_registry(docker_registry_factory: DockerRegistryFactory) -> DockerRegistry:
    """One CNCF distribution registry without auth (no referrers API: the fallback-tag peer)."""
    return docker_registry_factory()


# --- dockyard serve --------------------------------------------------------------------------


@dataclass
class DockyardServer:
    """`dockyard serve` as a subprocess on 127.0.0.1, with its data folder and admin password."""

    host: str
    url: str
    data: Path
    log: Path
    admin_password: str
    env: dict[str, str] = field(repr=False)
    args: list[str] = field(default_factory=list)
    process: _Process | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def cli(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run `dockyard *args --data DATA` with the server's environment."""
        return run(
            [DOCKYARD_BIN, *args, "--data", self.data],
            input=input,
            env=self.env,
            timeout=timeout,
            check=check,
        )

    def worker(self, name: str) -> _Process:
        """Start a `dockyard worker` on this server's data folder (logging beside the server's
        log as `name`.log); the caller stops it."""
        argv = [str(DOCKYARD_BIN), "worker", "--data", str(self.data)]
        return _Process(argv, self.env, self.log.with_name(f"{name}.log"))

    def start(self) -> None:
        """Start on this port and data folder; wait until GET /v2/ answers 200 or 401."""
        if self.process is not None and self.process.exited() is None:
            raise AssertionError("dockyard server is already running")
        argv = [
            str(DOCKYARD_BIN),
            "serve",
            "--data",
            str(self.data),
            "--listen",
            self.host,
            *self.args,
        ]
        process = _Process(argv, self.env, self.log)
        self.process = process
        try:
            wait_until(
                lambda: http_status(f"{self.url}/v2/") in (200, 401),
                timeout=STARTUP_TIMEOUT,
                what=f"dockyard serve on {self.host} to answer /v2/",
                abort=process.exited,
            )
        except AssertionError as error:
            process.stop()
            raise AssertionError(f"{error}\n--- {self.log} ---\n{log_tail(self.log)}") from None

    def kill(self) -> None:
        """SIGKILL the server and its workers, as a crash would."""
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        """Stop (gracefully, if still running) and start again on the same port and data."""
        self.stop()
        self.start()


DockyardServerFactory = Callable[..., DockyardServer]


def launch_dockyard(
    base: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    data: Path | None = None,
) -> DockyardServer:
    """Start `dockyard serve` on a free loopback port with its log and data under `base`.

    For fixtures of any scope; the caller stops it. `env` adds variables to a copy of this
    process's environment without its `DOCKYARD_*` ones; the admin password is random unless
    `DOCKYARD_ADMIN_PASSWORD` is given.
    """
    if data is None:
        data = base / "data"
        data.mkdir()
    port = free_port()
    server_env = _clean_env(drop_prefixes=("DOCKYARD_",))
    server_env["DOCKYARD_ADMIN_PASSWORD"] = secrets.token_urlsafe(18)
    server_env.update(env or {})
    server = DockyardServer(
        host=f"{HOST}:{port}",
        url=f"http://{HOST}:{port}",
        data=data,
        log=base / "server.log",
        admin_password=server_env["DOCKYARD_ADMIN_PASSWORD"],
        env=server_env,
        args=list(args),
    )
    server.start()
    return server


@pytest.fixture
def dockyard_server_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockyardServerFactory]:
    """Start `dockyard serve` processes: `factory(env={...}, args=[...], data=None)`.

    `env` adds variables (e.g. `DOCKYARD_DATABASE_URL`) to a copy of this process's
    environment without its `DOCKYARD_*` variables; `DOCKYARD_ADMIN_PASSWORD` is random unless
    given. `data` shares a data folder between servers; by default each gets a fresh one.
    """
    started: list[DockyardServer] = []

    def start(
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        data: Path | None = None,
    ) -> DockyardServer:
        server = launch_dockyard(tmp_path_factory.mktemp("dockyard"), env=env, args=args, data=data)
        started.append(server)
        _attach_log(request, f"dockyard {server.host}", server.log)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def dockyard_server(dockyard_server_factory: DockyardServerFactory) -> DockyardServer:
    """One `dockyard serve` with the embedded defaults (SQLite, filesystem) in a temp folder."""
    return dockyard_server_factory()


# --- skopeo and podman -----------------------------------------------------------------------


def _isolated_home(base: Path) -> dict[str, str]:
    """Environment for containers tools that touches nothing outside `base`."""
    home = base / "home"
    runtime = base / "run"
    for directory in (home, runtime, base / "config", base / "data"):
        directory.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    registries_conf = base / "registries.conf"
    # Fully qualified names only: no search registries, so never a short-name prompt.
    registries_conf.write_text(
        'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n'
    )
    # podman fails on a REGISTRY_AUTH_FILE that does not exist (skopeo does not mind).
    auth_file = base / "auth.json"
    auth_file.write_text('{"auths": {}}\n')
    env = _clean_env(drop_prefixes=("REGISTRY_AUTH_FILE", "CONTAINERS_", "DOCKER_CONFIG"))
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_DATA_HOME=str(base / "data"),
        REGISTRY_AUTH_FILE=str(auth_file),
        CONTAINERS_REGISTRIES_CONF=str(registries_conf),
    )
    return env


class Skopeo:
    """The real skopeo with its own HOME, auth file, registries.conf and trust policy.

    TLS verification is off for every registry (they are plain HTTP on loopback).
    """

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.env = _isolated_home(base)
        self.policy = base / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        self.auth_file = Path(self.env["REGISTRY_AUTH_FILE"])

    def run(
        self, *args: str | os.PathLike[str], timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`skopeo --policy POLICY *args`."""
        return run(
            ["skopeo", "--policy", self.policy, *args], env=self.env, timeout=timeout, check=check
        )

    def copy(
        self,
        src: str,
        dest: str,
        *extra: str,
        all: bool = False,
        src_creds: str | None = None,
        dest_creds: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """`skopeo copy SRC DEST` (`--all` copies every platform of an index)."""
        args = ["copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
        if all:
            args.append("--all")
        if src_creds:
            args += ["--src-creds", src_creds]
        if dest_creds:
            args += ["--dest-creds", dest_creds]
        return self.run(*args, *extra, src, dest, timeout=timeout)

    def inspect_raw(self, ref: str, *, creds: str | None = None, config: bool = False) -> bytes:
        """The manifest (or with `config=True` the config) exactly as the registry serves it."""
        args = ["inspect", "--tls-verify=false", "--raw"]
        if config:
            args.append("--config")
        if creds:
            args += ["--creds", creds]
        # Raw bytes matter (digests): run without text decoding.
        argv = ["skopeo", "--policy", str(self.policy), *args, ref]
        try:
            result = subprocess.run(
                argv, env=self.env, capture_output=True, timeout=COMMAND_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"command timed out: {' '.join(argv)}") from error
        if result.returncode != 0:
            raise CommandError(result.returncode, argv, _text(result.stdout), _text(result.stderr))
        return result.stdout

    def inspect(self, ref: str, *, creds: str | None = None) -> dict[str, Any]:
        """`skopeo inspect` as JSON (digest, tags, ...)."""
        args = ["inspect", "--tls-verify=false"]
        if creds:
            args += ["--creds", creds]
        result: dict[str, Any] = json.loads(self.run(*args, ref).stdout)
        return result

    def list_tags(self, ref: str, *, creds: str | None = None) -> list[str]:
        """`skopeo list-tags docker://HOST/REPO` → tags."""
        args = ["list-tags", "--tls-verify=false"]
        if creds:
            args += ["--creds", creds]
        tags: list[str] = json.loads(self.run(*args, ref).stdout)["Tags"]
        return tags

    def delete(self, ref: str, *, creds: str | None = None) -> subprocess.CompletedProcess[str]:
        args = ["delete", "--tls-verify=false"]
        if creds:
            args += ["--creds", creds]
        return self.run(*args, ref)


class Podman:
    """The real podman with its own storage (vfs), runroot, HOME, auth file and config.

    Nothing is shared with the machine's podman store or with other tests. TLS verification is
    off for every registry command. Call `close()` (the fixtures do) to remove the runroot.
    """

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.env = _isolated_home(base)
        self.root = base / "storage"
        self.root.mkdir(exist_ok=True)
        # podman 4.3 refuses a runroot longer than 50 characters (socket paths live there) and
        # pytest's tmp paths are longer: keep runroot and libpod's tmpdir in a short /tmp dir.
        self.short = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
        self.runroot = self.short / "run"
        self.tmpdir = self.short / "tmp"
        for directory in (self.runroot, self.tmpdir):
            directory.mkdir()
        storage_conf = base / "storage.conf"
        storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{self.runroot}"\ngraphroot = "{self.root}"\n'
        )
        containers_conf = base / "containers.conf"
        # No systemd or journald here: log events to nowhere, use cgroupfs.
        containers_conf.write_text(
            '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n'
        )
        self.env.update(
            CONTAINERS_STORAGE_CONF=str(storage_conf),
            CONTAINERS_CONF=str(containers_conf),
        )
        self.auth_file = Path(self.env["REGISTRY_AUTH_FILE"])

    def close(self) -> None:
        """Remove the short runroot directory (the storage stays with pytest's tmp dirs)."""
        shutil.rmtree(self.short, ignore_errors=True)

    def run(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`podman --storage-driver vfs --root ... --runroot ... --tmpdir ... *args`."""
        argv: list[str | os.PathLike[str]] = [
            "podman",
            "--storage-driver",
            "vfs",
            "--root",
            self.root,
            "--runroot",
            self.runroot,
            "--tmpdir",
            self.tmpdir,
            *args,
        ]
        return run(argv, input=input, env=self.env, timeout=timeout, check=check)

    def login(self, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "login", "--tls-verify=false", "-u", user, "--password-stdin", host, input=password
        )

    def logout(self, host: str) -> subprocess.CompletedProcess[str]:
        return self.run("logout", host)

    def pull(self, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """`podman pull REF` (`docker://`-less names, `oci:DIR:TAG`, `docker://...`)."""
        return self.run("pull", "--tls-verify=false", *extra, ref)

    def push(
        self, image: str, dest: str | None = None, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        args = ["push", "--tls-verify=false", *extra, image]
        if dest is not None:
            args.append(dest)
        return self.run(*args)

    def tag(self, image: str, *names: str) -> subprocess.CompletedProcess[str]:
        return self.run("tag", image, *names)

    def image_id(self, image: str) -> str:
        """The image ID (the config digest's hex) of an image in this store."""
        return self.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


@pytest.fixture
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    """skopeo isolated in a temp HOME (auth file, registries.conf, trust policy)."""
    return Skopeo(tmp_path_factory.mktemp("skopeo"))


PodmanFactory = Callable[[], Podman]


@pytest.fixture
def podman_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanFactory]:
    """More isolated podmans (e.g. a second machine that pulls what the first pushed)."""
    created: list[Podman] = []

    def create() -> Podman:
        instance = Podman(tmp_path_factory.mktemp("podman"))
        created.append(instance)
        return instance

    yield create
    for instance in created:
        instance.close()


@pytest.fixture
def podman(podman_factory: PodmanFactory) -> Podman:
    """podman isolated in a temp HOME with its own vfs storage."""
    return podman_factory()


def upload_data(data: Path, upload_id: str) -> Path:
    """The file an upload session's bytes gather in, under a server's data folder."""
    found = list((data / "storage" / "uploads").glob(f"*/{upload_id}/data"))
    assert len(found) == 1, f"upload {upload_id}: {len(found)} data files"
    return found[0]
