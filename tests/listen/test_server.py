"""The study server as a real process (``listen serve`` under uvicorn) spoken to over raw HTTP: loopback
binding, media only from the study's own files (``../`` and friends refused), the answer rules, no lost
answer when the server is killed, invitations, a proxy prefix, a busy port."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
from pathlib import Path

import pytest

from tests.listen.helpers import Server, create, db_rows, listen

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def study(listen_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = {k: listen_runs["runs"][k] for k in ("ours", "video", "video_label")}
    return create(tmp_path_factory.mktemp("served") / "study", runs, "--media", "copy")


@pytest.fixture(scope="module")
def server(study: Path):
    s = Server(study)
    yield s
    s.stop()


def request(server: Server, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request with the path sent exactly as given (http.client does not normalise ``..`` or ``%2e``)."""
    c = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def join(server: Server) -> str:
    status, headers, _ = request(server, "POST", "/start")
    assert status == 303, status
    m = re.fullmatch(r"/p/([A-Za-z0-9_-]+)", headers["location"])
    assert m, headers["location"]
    return m.group(1)


def plan(study: Path, token: str) -> list[tuple[int, str, str, list[str]]]:
    rows = db_rows(study, "SELECT s.position, s.block, s.item, s.shown_order FROM screens s JOIN participants p "
                   "ON p.id = s.participant_id WHERE p.token = ? ORDER BY s.position", (token,))
    return [(p, b, i, json.loads(o)) for p, b, i, o in rows]


def post_answer(server: Server, token: str, payload: dict) -> tuple[int, dict]:
    status, _, body = request(server, "POST", f"/p/{token}/answer", json.dumps(payload).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(body or b"{}")


def test_binds_loopback_only_by_default(server: Server) -> None:
    assert server.host == "127.0.0.1"
    # The kernel's own table of listening sockets: the server's port is bound to 127.0.0.1 (0100007F), not 0.0.0.0.
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, port = local.split(":")
        if int(port, 16) == server.port and state == "0A":  # 0A = LISTEN
            listening.append(addr)
    assert listening == ["0100007F"]


def test_media_is_the_recorded_method_and_supports_ranges(server: Server, study: Path) -> None:
    token = join(server)
    meta = json.loads((study / "study.json").read_text())
    items = {i["id"]: i for i in meta["items"]}
    position, _block, item, order = plan(study, token)[0]
    for k, method in enumerate(order):
        status, headers, body = request(server, "GET", f"/p/{token}/media/{position}/{chr(65 + k)}")
        assert status == 200 and headers["content-type"] == "video/mp4"
        assert body == (study / "media" / items[item]["media"][method]).read_bytes()  # letter -> this method's file
    status, headers, body = request(server, "GET", f"/p/{token}/media/{position}/A", headers={"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100 and headers["content-range"].startswith("bytes 0-99/")
    assert request(server, "GET", f"/p/{token}/media/{position}/{chr(65 + len(order))}")[0] == 404  # no such letter
    status, headers, _ = request(server, "GET", f"/p/{token}")
    assert status == 200 and "nonce-" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"


TRAVERSALS = [
    "/p/{t}/media/../../study.json",
    "/p/{t}/media/0/../../../study.json",
    "/p/{t}/media/0/..%2F..%2F..%2Fstudy.json",
    "/p/{t}/media/0/%2e%2e%2f%2e%2e%2fstudy.json",
    "/p/{t}/media/%2e%2e/%2e%2e",
    "/p/{t}/media/0/..",
    "/p/{t}/media/0/%2Fetc%2Fpasswd",
    "/p/{t}/media/0//etc/passwd",
    "/p/{t}/media/0/A%00",
    "/p/{t}/media/0/A/../../../../answers.sqlite",
    "/p/{t}/media/-1/A",
    "/p/{t}/media/0x0/A",
    "/p/..%2F..%2Fstudy.json/media/0/A",
    "/p/%2e%2e/media/0/A",
    "/media/v000/m0.mp4",
    "/study.json",
    "/answers.sqlite",
    "//etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/../study.json",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_paths_out_of_the_study_are_refused(server: Server, study: Path, path: str) -> None:
    token = join(server)
    status, _, body = request(server, "GET", path.format(t=token))
    assert status in (400, 404), (path, status)
    for secret in (b"study_id", b"SQLite format", b"root:x:0:0", b"ftyp"):  # study.json, the database, passwd, an mp4
        assert secret not in body, (path, secret)


def test_a_symlink_out_of_the_study_is_refused(listen_runs: dict, tmp_path: Path) -> None:
    runs = {k: listen_runs["runs"][k] for k in ("ours", "video")}
    s_dir = create(tmp_path / "study", runs, "--media", "copy")
    outside = tmp_path / "outside.mp4"
    shutil.copyfile(listen_runs["runs"]["ours"] / "vid_0000" / "vid_0000_generated.mp4", outside)
    srv = Server(s_dir)
    try:
        token = join(srv)
        position, _b, item, order = plan(s_dir, token)[0]
        meta = json.loads((s_dir / "study.json").read_text())
        rel = next(i for i in meta["items"] if i["id"] == item)["media"][order[0]]
        target = s_dir / "media" / rel
        assert request(srv, "GET", f"/p/{token}/media/{position}/A")[0] == 200
        target.unlink()
        target.symlink_to(outside)  # planted while serving: a valid mp4, but outside the study
        assert request(srv, "GET", f"/p/{token}/media/{position}/A")[0] == 404
        target.unlink()
        target.symlink_to(s_dir / "media" / next(iter(meta["items"][0]["media"].values())))  # even one pointing inside
        assert request(srv, "GET", f"/p/{token}/media/{position}/A")[0] == 404
    finally:
        srv.stop()
    # And a study with such a file does not start at all.
    p = listen("serve", "--study", str(s_dir), "--port", "0", timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1
    assert rel.split("/")[0] in p.stderr and "not a regular file inside" in p.stderr


def test_the_first_answer_is_final(server: Server, study: Path) -> None:
    token = join(server)
    screens = plan(study, token)
    pos, block, item, order = screens[0]
    ok = {"position": pos, "choices": {"matching": "A", "quality": "B"}, "elapsed_ms": 4200, "played": ["A", "B", "C"]}
    status, reply = post_answer(server, token, ok)
    assert status == 200 and reply["status"] == "recorded" and reply["answered"] == 1
    assert post_answer(server, token, ok) == (200, {**reply, "status": "unchanged"})  # a retried request
    status, reply2 = post_answer(server, token, {**ok, "choices": {"matching": "C", "quality": "B"}})
    assert status == 409 and "first answer is final" in reply2["detail"]
    rows = db_rows(study, "SELECT a.question, a.choice_letter, a.choice_method, a.elapsed_ms, a.played FROM answers a "
                   "JOIN participants p ON p.id = a.participant_id WHERE p.token = ? ORDER BY a.question", (token,))
    assert rows == [("matching", "A", order[0], 4200, '["A", "B", "C"]'), ("quality", "B", order[1], 4200, '["A", "B", "C"]')]
    pos1 = screens[1][0]
    assert post_answer(server, token, {"position": pos1, "choices": {"matching": "A"}})[0] == 400  # all or nothing
    assert post_answer(server, token, {"position": pos1, "choices": {"matching": "A", "quality": "Z"}})[0] == 400
    assert post_answer(server, token, {"position": pos1, "choices": {"matching": "A", "quality": "A", "x": "A"}})[0] == 400
    assert post_answer(server, token, {"position": 999, "choices": {"matching": "A", "quality": "A"}})[0] == 404
    assert post_answer(server, "x" * 24, {"position": 0, "choices": {"matching": "A", "quality": "A"}})[0] == 404
    status, _, _ = request(server, "POST", f"/p/{token}/answer", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    assert len(db_rows(study, "SELECT 1 FROM answers a JOIN participants p ON p.id = a.participant_id "
                       "WHERE p.token = ?", (token,))) == 2  # none of the refused ones left a row


def test_a_killed_server_has_lost_no_answer(listen_runs: dict, tmp_path: Path) -> None:
    runs = {k: listen_runs["runs"][k] for k in ("ours", "video")}
    s_dir = create(tmp_path / "study", runs)
    srv = Server(s_dir)
    token = join(srv)
    screens = plan(s_dir, token)
    for pos, *_ in screens:
        status, reply = post_answer(srv, token, {"position": pos, "choices": {"matching": "B", "quality": "A"}})
        assert status == 200 and reply["status"] == "recorded"
    os.kill(srv.proc.pid, signal.SIGKILL)  # no shutdown, no checkpoint of the WAL: only what was committed survives
    srv.stop()
    rows = db_rows(s_dir, "SELECT position, question, choice_letter FROM answers ORDER BY position, question")
    assert rows == [(pos, q, L) for pos, *_ in screens for q, L in (("matching", "B"), ("quality", "A"))]


def test_invite_only_study(listen_runs: dict, tmp_path: Path) -> None:
    runs = {k: listen_runs["runs"][k] for k in ("ours", "video")}
    s_dir = create(tmp_path / "study", runs)
    p = listen("invite", "--study", str(s_dir), "--count", "3", "--base-url", "https://study.example.org/x/")
    assert p.returncode == 0, p.stderr
    links = p.stdout.split()
    assert len(links) == 3 and all(re.fullmatch(r"https://study\.example\.org/x/p/[A-Za-z0-9_-]{24}", u) for u in links)
    srv = Server(s_dir, "--invite-only")
    try:
        assert request(srv, "POST", "/start")[0] == 403
        status, _, body = request(srv, "GET", "/")
        assert status == 200 and b"by invitation" in body and b'id="start"' not in body
        token = links[0].rsplit("/", 1)[1]
        status, _, body = request(srv, "GET", f"/p/{token}")
        assert status == 200 and b'id="screen"' in body
        assert db_rows(s_dir, "SELECT COUNT(*), MIN(source) FROM participants") == [(3, "invite")]
    finally:
        srv.stop()


def test_behind_a_proxy_prefix(study: Path) -> None:
    srv = Server(study, "--root-path", "/study/")
    try:
        assert "links use the prefix /study" in srv.log.read_text()
        status, headers, _ = request(srv, "POST", "/start")  # the proxy strips /study before passing it on
        assert status == 303 and headers["location"].startswith("/study/p/")
        token = headers["location"].rsplit("/", 1)[1]
        _, _, body = request(srv, "GET", f"/p/{token}")
        assert b'src="/study/p/' in body and b'data-answer-url="/study/p/' in body
        _, _, body = request(srv, "GET", "/")
        assert b'action="/study/start"' in body
    finally:
        srv.stop()


def test_a_busy_port_is_one_error_line(study: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = listen("serve", "--study", str(study), "--port", str(port), timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == (f"error: port {port} on 127.0.0.1 is in use by another program: choose another with "
                                f"--port (or --port 0 for any free one)")
    assert p.stdout == ""
