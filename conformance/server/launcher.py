"""Start the reference server on a free loopback port, for ``imgconf run`` and for tests.

``with start_reference_server() as server:`` gives ``server.base_url`` (``http://127.0.0.1:PORT/v1``,
as the OpenAI SDK takes it) and ``server.api_key`` (a fresh random key unless one is given).

The listening socket is bound here, in the caller's process, before the server runs: the port is
known at once and a client that connects early just waits in the backlog. The server then runs
either in a child process (the default) or in a thread of this process:

- ``mode="process"``: a child Python serves the socket, so the server's work (JSON, base64,
  Pillow) and the client's (parsing, judging images) run on two cores instead of sharing one
  interpreter lock. The child is told the configuration through its environment (the key never
  appears on a command line) and exits when its stdin closes, so it cannot outlive its parent.
- ``mode="thread"``: uvicorn in a daemon thread; starts faster (tens of milliseconds against
  about 200 ms for the child) and suits tests that make a few requests.

Measured with ``tools/bench_server.py`` (2 cores, concurrency 8, a client that decodes every
image): about 600 requests per second from the child process against about 160 from the thread,
whose server and client contend for one interpreter lock. That is why the child is the default.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .. import settings
from ..errors import SetupError
from .quirks import ActiveQuirks, parse_quirks

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "RunningServer",
    "base_path",
    "bind_socket",
    "profile_file_of",
    "reached_at",
    "start_reference_server",
    "uvicorn_server",
]

_CONFIG_ENV = "IMGCONF_REFERENCE_SERVER_CONFIG"
_READY = "ready"


@dataclass
class RunningServer:
    """A reference server that is up; ``stop()`` is idempotent."""

    host: str
    port: int
    api_key: str
    lenient: bool
    quirks: tuple[str, ...]
    mode: str
    _stopper: object = field(repr=False, default=None)
    #: The API base's path: ``/v1``, or a profile's (placeholders filled with their names).
    base_path: str = "/v1"

    @property
    def pid(self) -> int | None:
        """The id of the process that serves, for measuring its CPU apart from a client's;
        None when it serves from a thread of this process."""
        return getattr(self._stopper, "pid", None)

    @property
    def url(self) -> str:
        """The server's origin, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base, as the OpenAI SDK and ``imgconf run --base-url`` take it."""
        return f"{self.url}{self.base_path}"

    def stop(self) -> None:
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()  # type: ignore[operator]


def bind_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound and listening.

    Made with the protocol named (``IPPROTO_TCP``, not the default 0): asyncio turns Nagle's
    algorithm off (``TCP_NODELAY``) only on connections whose socket says so, and a connection
    accepted from a socket made without it sent an answer's body after its headers only once
    the client's delayed acknowledgement came, 40 ms later, on every request of a kept-alive
    connection. (A child process that rebuilds the socket from its descriptor reads the protocol
    from the kernel, so only ``imgconf serve`` and the thread mode were slow.)
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    return sock


def uvicorn_server(
    config_dict: dict[str, Any], *, in_thread: bool, log_level: str = "critical"
) -> uvicorn.Server:
    """The reference server as uvicorn runs it, from the launcher's configuration."""
    import uvicorn

    from .app import ServerConfig, create_app, hide_dropped_connection_logs

    options = {
        "api_key": config_dict["api_key"],
        "lenient": config_dict["lenient"],
        "quirks": parse_quirks(config_dict["quirks"]),
        "url_ttl": config_dict["url_ttl"],
        "realistic_images": config_dict.get("realistic_images", False),
    }
    if config_dict.get("profile"):
        from ..contract.profiles import load_profile

        profile = load_profile(config_dict["profile"])
        config = ServerConfig.for_profile(profile, **options)
    else:
        config = ServerConfig(**options)
    uv_config = uvicorn.Config(
        create_app(config),
        log_level=log_level,
        access_log=log_level in ("debug", "info"),
        lifespan="off",
        timeout_graceful_shutdown=settings.GRACEFUL_STOP,
        log_config=None if in_thread else uvicorn.config.LOGGING_CONFIG,
    )
    hide_dropped_connection_logs()
    return uvicorn.Server(uv_config)


@contextmanager
def start_reference_server(
    api_key: str | None = None,
    lenient: bool = False,
    quirks: Iterable[str] | ActiveQuirks = (),
    url_ttl: float = 3600.0,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    mode: Literal["process", "thread"] = "process",
    profile: str | None = None,
    realistic_images: bool = False,
) -> Iterator[RunningServer]:
    """Run a reference server for the duration of the ``with`` block.

    ``quirks`` are names as ``imgconf serve --quirk`` takes them (``"slow:2"``); an unknown one
    is a SetupError before anything starts. ``profile`` (a name or file) makes it reached the
    profile's way: its path, auth style and required query.
    ``realistic_images``: photographic-like pictures of 1-4 MB (benchmarks).
    """
    active = quirks if isinstance(quirks, ActiveQuirks) else parse_quirks(quirks)
    config = {
        "api_key": api_key or f"sk-imgconf-{secrets.token_hex(16)}",
        "lenient": lenient,
        "quirks": list(active.spec()),
        "url_ttl": url_ttl,
        "profile": profile_file_of(profile),
        "realistic_images": realistic_images,
    }
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    starter = _start_process if mode == "process" else _start_thread
    try:
        stopper = starter(config, sock)
    finally:
        if mode == "process":
            sock.close()  # the child holds its own copy
    server = RunningServer(
        host=host,
        port=bound_port,
        api_key=config["api_key"],
        lenient=lenient,
        quirks=tuple(config["quirks"]),
        mode=mode,
        _stopper=stopper,
        base_path=base_path(config["profile"]),
    )
    try:
        yield server
    finally:
        server.stop()


class _ThreadStopper:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket):
        self.server, self.thread, self.sock = server, thread, sock

    def __call__(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=settings.GRACEFUL_STOP + 5)
        self.sock.close()


def _start_thread(config: dict, sock: socket.socket) -> _ThreadStopper:
    server = uvicorn_server(config, in_thread=True)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="imgconf-reference-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + settings.START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise SetupError("the embedded reference server did not start")
        time.sleep(0.002)
    return _ThreadStopper(server, thread, sock)


class _ProcessStopper:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __call__(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=settings.GRACEFUL_STOP + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _start_process(config: dict, sock: socket.socket) -> _ProcessStopper:
    env = {**os.environ, _CONFIG_ENV: json.dumps({**config, "fd": sock.fileno()})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.server.launcher"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        pass_fds=(sock.fileno(),),
    )
    stopper = _ProcessStopper(proc)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=settings.START_TIMEOUT)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    if line != _READY:
        stopper()
        raise SetupError(
            "the embedded reference server did not start"
            + (f" (exit status {proc.returncode})" if proc.returncode is not None else "")
        )
    return stopper


def profile_file_of(profile: str | None) -> str | None:
    """The profile's file, for the server (a child process loads it again): None for none; a
    profile that does not load is a SetupError here, before anything starts."""
    if profile is None:
        return None
    from ..contract.profiles import load_profile

    loaded = load_profile(profile)
    return str(loaded.file) if loaded.file is not None else profile


def base_path(profile: str | None) -> str:
    """The API base's path a client uses: the profile's, a placeholder filled with its name
    (``/openai/deployments/{deployment}`` is reached at ``/openai/deployments/deployment``)."""
    if profile is None:
        return "/v1"
    from ..contract.profiles import load_profile
    from .app import ServerConfig

    base = ServerConfig.for_profile(load_profile(profile), api_key="").base_path
    return re.sub(r"\{(\w+)(?::\w+)?\}", r"\1", base)


def reached_at(
    host: str, port: int, profile: str | None, profile_file: str | None
) -> tuple[str, str]:
    """The base URL a client gives to reach a server on ``host:port`` (the profile's base
    path and required query), and how the profile sends its key, in words ("" without one)."""
    base = f"http://{host}:{port}{base_path(profile_file)}"
    if profile is None:
        return base, ""
    from ..contract.profiles import load_profile
    from ..contract.reach import join_url

    loaded = load_profile(profile_file or profile)
    deployments = ", ".join(f"{d}={loaded.label(m)}" for m, d in loaded.deployments.items())
    return (
        join_url(base, "", loaded.query),
        f", profile {loaded.name}, key in the {loaded.auth.where()}"
        + (f", deployments {deployments}" if deployments else ""),
    )


def _child_main() -> None:
    """The child process: serve the inherited socket until told to stop or orphaned."""
    config = json.loads(os.environ.pop(_CONFIG_ENV))
    sock = socket.socket(fileno=config.pop("fd"))
    server = uvicorn_server(config, in_thread=False)

    def watch_parent() -> None:
        # stdin is a pipe from the parent: end of file means the parent has gone.
        sys.stdin.buffer.read()
        server.should_exit = True

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.002)
        sys.stdout.write(_READY + "\n")
        sys.stdout.flush()
        await task

    threading.Thread(target=watch_parent, daemon=True).start()
    asyncio.run(serve())


if __name__ == "__main__":
    _child_main()
