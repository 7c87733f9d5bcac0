"""The listening-study web app (FastAPI): participants join, watch blinded videos, answer.

Routes (``<root>`` is the proxy's path prefix, ``--root-path``):

    GET  /                                   welcome page with a Start button (or "by invitation")
    POST /start                              a new participant and their plan -> 303 to /p/<token>
    GET  /p/<token>                          the participant's next unanswered screen, or the thanks page
    GET  /p/<token>/media/<position>/<L>     the video behind letter L on that screen (Range requests work)
    POST /p/<token>/answer                   {"position", "choices": {question: letter}, "elapsed_ms", "played"}
    GET  /healthz                            {"ok": true, "study": id}

Media is looked up, never built from the URL: (token, position, letter) -> the method in the
participant's recorded order -> the study's file for (item, method) through
:func:`physdiff.listen.media.safe_media_path`. Any other path, ``../`` and its encodings included, is
a 404. Replies carry a strict Content-Security-Policy (scripts and styles by per-response nonce),
``Referrer-Policy: no-referrer`` (the token is in the URL) and ``X-Content-Type-Options: nosniff``.

    app = create_app(load_study("studies/s1"), invite_only=False)
    uvicorn.run(app, host="127.0.0.1", port=8000)    # or: python -m physdiff.listen serve --study studies/s1
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from physdiff.listen import pages
from physdiff.listen.store import AnswerConflict, AnswerStore, BadAnswer
from physdiff.listen.study import Screen, Study, participant_plan

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LETTER = re.compile(r"^[A-Z]$")
POSITION = re.compile(r"^[0-9]{1,5}$")


class AnswerBody(BaseModel):
    position: int = Field(ge=0)
    choices: dict[str, str]
    elapsed_ms: int | None = Field(default=None, ge=0)
    played: list[str] = Field(default_factory=list, max_length=26)


def _csp(nonce: str) -> str:
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; media-src 'self'; "
            f"connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _html(text: str, nonce: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={"Content-Security-Policy": _csp(nonce),
                                                           "Cache-Control": "no-store"})


def create_app(study: Study, store: AnswerStore | None = None, *, invite_only: bool = False) -> FastAPI:
    """The app over one study (its answers store opened if not given)."""
    store = store or AnswerStore.open(study.answers_path, study.study_id)
    app = FastAPI(title=study.title, docs_url=None, redoc_url=None, openapi_url=None)
    n_screens = len(study.items) * len(study.blocks)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        resp = await call_next(request)
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Plain, short, and never echoing the request path back.
        return JSONResponse({"detail": {404: "not found", 405: "method not allowed"}.get(exc.status_code, "error")},
                            status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": "malformed request"}, status_code=400)

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def who(token: str):
        return store.participant(token) if TOKEN.match(token) else None

    def not_found(nonce: str) -> HTMLResponse:
        return _html(pages.message_page("Not found", "This link is not valid. Open the link you were given.", nonce),
                     nonce, 404)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True, "study": study.study_id}

    @app.get("/")
    def welcome(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(12)
        return _html(pages.welcome_page(study, root(request), nonce, invite_only), nonce)

    @app.post("/start")
    def start(request: Request) -> Response:
        if invite_only:
            nonce = secrets.token_urlsafe(12)
            return _html(pages.message_page("By invitation", "This study is by invitation: open the link you were "
                                            "given.", nonce), nonce, 403)
        seed = secrets.randbits(48)
        p = store.add_participant(participant_plan(study, seed), seed=seed, source="start",
                                  user_agent=(request.headers.get("user-agent") or "")[:300])
        return RedirectResponse(f"{root(request)}/p/{p.token}", status_code=303)

    @app.get("/p/{token}")
    def screen(request: Request, token: str) -> HTMLResponse:
        nonce = secrets.token_urlsafe(12)
        p = who(token)
        if p is None:
            return not_found(nonce)
        plan = store.screens(p.id)
        done = store.answered_positions(p.id)
        left = [s for s in plan if s.position not in done]
        if not left:
            return _html(pages.done_page(study, p.completion_code, nonce), nonce)
        return _html(pages.screen_page(study, left[0], token, root(request), nonce, len(done), len(plan)), nonce)

    def screen_of(token: str, position: str) -> tuple[Any, Screen] | None:
        p = who(token)
        if p is None or not POSITION.match(position):
            return None
        s = next((s for s in store.screens(p.id) if s.position == int(position)), None)
        return (p, s) if s is not None else None

    @app.get("/p/{token}/media/{position}/{letter}")
    def media(token: str, position: str, letter: str) -> Response:
        found = screen_of(token, position) if LETTER.match(letter) else None
        method = found[1].method_of(letter) if found else None
        path = study.media_file(found[1].item, method) if method else None
        if path is None:
            raise StarletteHTTPException(404)
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/p/{token}/answer")
    def answer(request: Request, token: str, body: AnswerBody) -> Response:
        found = screen_of(token, str(body.position))
        if found is None:
            raise StarletteHTTPException(404)
        p, s = found
        try:
            status = store.submit(p.id, s.position, body.choices, questions=study.block(s.block).questions,
                                  elapsed_ms=body.elapsed_ms, played=body.played)
        except AnswerConflict as e:
            return JSONResponse({"detail": str(e)}, status_code=409)
        except BadAnswer as e:
            return JSONResponse({"detail": str(e)}, status_code=400)
        # Committed: only now does the participant hear that it was saved.
        return JSONResponse({"status": status, "next": f"{root(request)}/p/{token}",
                             "answered": len(store.answered_positions(p.id)), "screens": n_screens})

    return app
