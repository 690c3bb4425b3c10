"""Running a local server as a subprocess on 127.0.0.1, for tests, benchmarks and scripts.

One place for the three things every caller needs: a free port, a readiness wait that
reports the server's log when it dies, and a stop that reaches every worker (BentoML,
MLflow and Evidently start their workers as children, some in sessions of their own).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(host: str, port: int, flag: str = "--port", file: str | None = None,
                     key: str | None = None) -> None:
    """Raise a one-line :class:`~crimecast.errors.CrimecastError` when ``host:port`` cannot
    be bound (another server is on it, or the address is not this machine's), before a
    server is started on it. ``file``/``key`` name the setting that chose the port."""
    import errno

    from crimecast.errors import CrimecastError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CrimecastError(
                    f"port {port} on {host} is already in use (another server on it?)",
                    file=file, key=key,
                    hint=f"stop what is using it, or pick another port with {flag} N") from None
            raise CrimecastError(f"cannot listen on {host}:{port}: {exc.strerror}",
                                 file=file, key=key.replace("port", "host") if key else None,
                                 hint="use an address of this machine, e.g. 127.0.0.1") from None


def wait_until_ready(url: str, process: subprocess.Popen, log: Path | None = None,
                     name: str = "server", timeout_s: float = 120.0) -> None:
    """Poll ``url`` until it answers 200. Raises with the log's tail if the process exits
    first, or after ``timeout_s`` (a readiness wait, not a speed requirement)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{name} exited with {process.returncode}: {tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not answer {url} within {timeout_s:.0f} s")


def stop_process_tree(process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Terminate ``process`` and all its descendants; kill what is still alive after
    ``timeout_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(process.pid)
        family = [root, *root.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout_s)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
    process.wait()
