"""Serving a study with uvicorn on a socket bound here first, so a busy port is one clear error line.

    serve("studies/s1")                                   # http://127.0.0.1:8000/, loopback only
    serve("studies/s1", host="0.0.0.0", port=8080, invite_only=True, root_path="/study")   # behind a proxy

The first line on stdout is ``listening on http://HOST:PORT/`` (the real port when ``port=0``), printed
once the socket accepts connections. Behind a proxy with ``root_path="/study"`` the proxy strips the
prefix (requests arrive as ``/p/...``) and the pages' links carry it (``/study/p/...``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from pathlib import Path

from physdiff.errors import PhysdiffError
from physdiff.listen.store import AnswerStore
from physdiff.listen.study import check_media, load_study

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); PhysdiffError naming both when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PhysdiffError(f"--host {host!r} is not an address of this machine ({e})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR lets a restarted server take its port back from TIME_WAIT; on Linux it still refuses a
    # port another process is listening on, which is the error below.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PhysdiffError(f"port {port} on {host} is in use by another program: choose another with --port "
                                f"(or --port 0 for any free one)") from None
        if e.errno == errno.EACCES:
            raise PhysdiffError(f"no permission to listen on port {port} of {host} (ports below 1024 need root): "
                                f"use --port 8000 or higher") from None
        raise PhysdiffError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)  # connections queue from now on, even before uvicorn's loop accepts them
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(study_dir: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, invite_only: bool = False,
          root_path: str = "", log_level: str = "warning") -> None:
    """Serve the study until interrupted (Ctrl-C / SIGTERM stop it cleanly; answers are already committed)."""
    import uvicorn

    from physdiff.listen.app import create_app

    study = load_study(study_dir)
    check_media(study)
    store = AnswerStore.open(study.answers_path, study.study_id)
    app = create_app(study, store, invite_only=invite_only)
    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not is_loopback(host):
        print(f"warning: serving on {host}: anyone who can reach this machine can open the study"
              f"{'' if invite_only else ' and join it (add --invite-only to accept invited links only)'}; "
              f"put a TLS reverse proxy in front for participants outside this network (docs/listening.md)",
              file=sys.stderr, flush=True)
    if root_path:
        print(f"links use the prefix {root_path.rstrip('/')}: the reverse proxy serves the study there and strips it "
              f"before passing requests on", file=sys.stderr, flush=True)
    print(f"listening on http://{shown}:{bound_port}/", flush=True)
    config = uvicorn.Config(app, log_level=log_level, root_path=root_path.rstrip("/"), access_log=False,
                            proxy_headers=True, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
