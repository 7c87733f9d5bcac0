"""Participants and answers of a listening study, in SQLite (``<study>/answers.sqlite``).

Tables:

- ``participants``: token (the secret in a participant's URL), the seed of their plan, how they
  joined (``start`` page or ``invite``), when, a completion code, the browser's user agent;
- ``screens``: each participant's plan as it was shown: position, block, item and the methods in
  letter order (``["ours", "video", ...]`` = A is ours, B is video...), written when they join;
- ``answers``: one row per participant, block, item and question: the letter clicked, the method
  behind it, the shown order, the server time (UTC), the client's time on the screen and which
  letters were played.

**One answer per participant per item and question: the first answer is final.** Sending the same
choice again (a retried request) is accepted and changes nothing; a different choice is refused
(:class:`AnswerConflict`, HTTP 409). Changing one's mind after seeing later screens would let the
order of screens leak into the answers, which is what the randomisation is for.

Durability: WAL journal with ``synchronous=FULL``; a submission is one transaction, committed
before the server replies, so a server killed after its reply has lost nothing.

    store = AnswerStore.open(study.answers_path, study.study_id)
    p = store.add_participant(participant_plan(study, seed), seed=seed, source="start")
    store.submit(p.id, position=0, choices={"matching": "B", "quality": "A"}, elapsed_ms=5400, played=["A", "B"])
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from physdiff.errors import DataError, PhysdiffError
from physdiff.listen.screen import Screen

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    seed INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completion_code TEXT NOT NULL,
    user_agent TEXT
);
CREATE TABLE screens (
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    block TEXT NOT NULL,
    item TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    PRIMARY KEY (participant_id, position),
    UNIQUE (participant_id, block, item)
);
CREATE TABLE answers (
    participant_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    block TEXT NOT NULL,
    item TEXT NOT NULL,
    question TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    choice_letter TEXT NOT NULL,
    choice_method TEXT NOT NULL,
    answered_at TEXT NOT NULL,
    elapsed_ms INTEGER,
    played TEXT NOT NULL,
    PRIMARY KEY (participant_id, block, item, question),
    FOREIGN KEY (participant_id, position) REFERENCES screens(participant_id, position)
);
"""
TABLES = ("meta", "participants", "screens", "answers")


class AnswerConflict(PhysdiffError):
    """A second, different answer to a question already answered (the first answer is final)."""


class BadAnswer(PhysdiffError):
    """A submission that does not fit the participant's screen (unknown position, question or letter)."""


@dataclass(frozen=True)
class Participant:
    id: int
    token: str
    seed: int
    source: str
    created_at: str
    completion_code: str


@dataclass(frozen=True)
class Answer:
    participant_id: int
    position: int
    block: str
    item: str
    question: str
    shown_order: tuple[str, ...]
    choice_letter: str
    choice_method: str
    answered_at: str
    elapsed_ms: int | None
    played: tuple[str, ...]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class AnswerStore:
    """The study's answers database. Each call opens its own connection: the web server answers from a
    thread pool, and SQLite connections must not cross threads; opening one is ~0.1 ms."""

    def __init__(self, path: Path, study_id: str):
        self.path = Path(path)
        self.study_id = study_id

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, path: str | Path, study_id: str) -> "AnswerStore":
        path = Path(path)
        if path.exists():
            raise PhysdiffError(f"{path} already exists")
        con = sqlite3.connect(path)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA_VERSION), ("study_id", study_id)])
            con.commit()
        finally:
            con.close()
        return cls(path, study_id)

    @classmethod
    def open(cls, path: str | Path, study_id: str) -> "AnswerStore":
        """The answers database of study ``study_id``; DataError naming the file when it is missing, corrupt,
        of another study or of another schema."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"answers database {path} not found (the study folder is incomplete)")
        store = cls(path, study_id)
        try:
            con = store._connect()
            try:
                check = con.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise DataError(f"answers database {path} is damaged (quick_check: {check}); restore it from a copy")
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not set(TABLES) <= tables:
                    raise DataError(f"{path} is not a listening-study answers database (tables {sorted(tables)})")
                meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise DataError(f"answers database {path} is unreadable ({e}); restore it from a copy") from None
        if meta.get("schema") != SCHEMA_VERSION:
            raise DataError(f"answers database {path} has schema {meta.get('schema')!r}, expected {SCHEMA_VERSION!r}")
        if meta.get("study_id") != study_id:
            raise DataError(f"answers database {path} belongs to study {meta.get('study_id')!r}, not {study_id!r}")
        return store

    def close(self) -> None:  # connections are per call; kept for symmetry with create()
        return None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.execute("PRAGMA synchronous=FULL")  # a committed answer survives a killed process or a power cut
        con.execute("PRAGMA foreign_keys=ON")
        return con

    # ---------------------------------------------------------------- participants
    def add_participant(self, plan: Sequence[Screen], *, seed: int, source: str,
                        user_agent: str | None = None) -> Participant:
        """A new participant with a fresh token, and their whole plan, in one transaction."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            token = secrets.token_urlsafe(18)  # 144 random bits: the URL is the credential
            code = secrets.token_hex(4).upper()
            created = _now()
            cur = con.execute("INSERT INTO participants (token, seed, source, created_at, completion_code, user_agent) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (token, int(seed), source, created, code, user_agent))
            pid = int(cur.lastrowid)
            con.executemany("INSERT INTO screens VALUES (?, ?, ?, ?, ?)",
                            [(pid, s.position, s.block, s.item, json.dumps(list(s.order))) for s in plan])
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return Participant(pid, token, int(seed), source, created, code)

    def participant(self, token: str) -> Participant | None:
        con = self._connect()
        try:
            row = con.execute("SELECT id, token, seed, source, created_at, completion_code FROM participants "
                              "WHERE token = ?", (token,)).fetchone()
        finally:
            con.close()
        return Participant(*row) if row else None

    def participants(self) -> list[Participant]:
        con = self._connect()
        try:
            rows = con.execute("SELECT id, token, seed, source, created_at, completion_code FROM participants "
                               "ORDER BY id").fetchall()
        finally:
            con.close()
        return [Participant(*r) for r in rows]

    def screens(self, participant_id: int) -> list[Screen]:
        con = self._connect()
        try:
            rows = con.execute("SELECT position, block, item, shown_order FROM screens WHERE participant_id = ? "
                               "ORDER BY position", (participant_id,)).fetchall()
        finally:
            con.close()
        return [Screen(int(p), b, i, tuple(json.loads(o))) for p, b, i, o in rows]

    def answered_positions(self, participant_id: int) -> set[int]:
        con = self._connect()
        try:
            rows = con.execute("SELECT DISTINCT position FROM answers WHERE participant_id = ?",
                               (participant_id,)).fetchall()
        finally:
            con.close()
        return {int(r[0]) for r in rows}

    # ---------------------------------------------------------------- answers
    def submit(self, participant_id: int, position: int, choices: dict[str, str], *, questions: Iterable[str],
               elapsed_ms: int | None = None, played: Sequence[str] = ()) -> str:
        """Record the answers to one screen (every one of ``questions``, all or nothing).

        Returns "recorded", or "unchanged" when exactly these answers were already recorded; raises
        AnswerConflict when any question already holds a different answer, BadAnswer when the
        submission does not fit the screen. Committed before returning.
        """
        questions = tuple(questions)
        if set(choices) != set(questions):
            missing, extra = set(questions) - set(choices), set(choices) - set(questions)
            raise BadAnswer(f"answer every question of this screen ({', '.join(questions)})"
                            + (f"; missing {', '.join(sorted(missing))}" if missing else "")
                            + (f"; unknown {', '.join(sorted(extra))}" if extra else ""))
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")  # the write lock first: two racing submissions cannot both "record"
            row = con.execute("SELECT block, item, shown_order FROM screens WHERE participant_id = ? AND position = ?",
                              (participant_id, position)).fetchone()
            if row is None:
                raise BadAnswer(f"no screen {position} for this participant")
            block, item, order_json = row
            screen = Screen(position, block, item, tuple(json.loads(order_json)))
            letters = set(screen.letters)
            bad = {q: c for q, c in choices.items() if c not in letters}
            if bad:
                raise BadAnswer(f"choices must be one of {', '.join(screen.letters)}; got {bad}")
            played_clean = sorted({p for p in played if p in letters})
            prior = dict(con.execute("SELECT question, choice_letter FROM answers WHERE participant_id = ? "
                                     "AND block = ? AND item = ?", (participant_id, block, item)).fetchall())
            if prior:
                if prior == choices:
                    con.execute("ROLLBACK")
                    return "unchanged"
                raise AnswerConflict(f"screen {position} was already answered ({prior}); the first answer is final")
            now = _now()
            con.executemany("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(participant_id, position, block, item, q, order_json, c, screen.method_of(c), now,
                              None if elapsed_ms is None else int(elapsed_ms), json.dumps(played_clean))
                             for q, c in choices.items()])
            con.execute("COMMIT")
            return "recorded"
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def answers(self) -> list[Answer]:
        con = self._connect()
        try:
            rows = con.execute("SELECT participant_id, position, block, item, question, shown_order, choice_letter, "
                               "choice_method, answered_at, elapsed_ms, played FROM answers "
                               "ORDER BY participant_id, position, question").fetchall()
        finally:
            con.close()
        return [Answer(int(r[0]), int(r[1]), r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7], r[8],
                       None if r[9] is None else int(r[9]), tuple(json.loads(r[10]))) for r in rows]
