"""A whole study in a real headless Chromium (Debian's, driven by Playwright): two participants join,
play every video, click their answers and submit; then the database and ``listen report`` must hold
exactly what was clicked. A screenshot of a screen is kept in the test artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.listen.helpers import CHROMIUM_FLAGS, Server, create, db_rows, ensure_chromium, listen

pytestmark = pytest.mark.timeout(600)

# What each participant prefers: (participant, block, item, question) -> the method they click.
# Participant 1 always finds ours best matching; participant 2 splits by video; their quality picks differ.
# The browser test looks the letter of that method up in the participant's recorded order (the
# participant's ear, in a test), so the expected report numbers below are known without the browser.


def prefers(who: int, block: str, item: str, question: str) -> str:
    if who == 1:
        if question == "matching":
            return "ours"
        return "ours" if block == "main" else "video_label"
    if question == "matching":
        return "ours" if item == "v000" else "video"
    return "video_spec" if block == "main" else "ours"


def _playwright():
    # Waits go through locators, not wait_for_function: the page's CSP (scripts by nonce only) forbids the
    # eval that wait_for_function uses, and the test keeps that CSP on.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the `playwright` package (a dev dependency: pip install playwright); "
                    "it drives Debian's chromium, no browser download")
    return sync_playwright


def test_two_participants_complete_the_study_in_chromium(listen_runs: dict, tmp_path: Path,
                                                         artifacts_dir: Path) -> None:
    exe = ensure_chromium()
    sync_playwright = _playwright()
    from playwright.sync_api import expect
    runs = listen_runs["runs"]
    study = create(tmp_path / "study", runs, "--max-videos", "2", "--seed", "3", "--title", "Which sound fits?")
    meta = json.loads((study / "study.json").read_text())
    assert [b["name"] for b in meta["blocks"]] == ["main", "ablation"]
    items = [i["id"] for i in meta["items"]]
    assert items == ["v000", "v001"]  # 2 of the 3 common videos (--max-videos), renumbered
    # Whatever would tell a participant which method is which: names ("video" alone is also an HTML tag),
    # variants, run folders, the study's file names, the source video ids.
    telltales = (["ours", "video_label", "video_spec", "variant", "generate-", ".mp4", "vid_0"]
                 + [str(r) for r in runs.values()])

    server = Server(study)
    clicked: list[tuple[int, str, str, str, str]] = []  # (who, block, item, question, method)
    tokens = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
            for who in (1, 2):
                context = browser.new_context(viewport={"width": 1280, "height": 900})  # a fresh profile each
                page = context.new_page()
                page.goto(server.url + "/")
                page.click("#start")
                page.wait_for_url("**/p/*")
                token = page.url.rsplit("/", 1)[1]
                tokens[who] = token
                (pid,) = db_rows(study, "SELECT id FROM participants WHERE token = ?", (token,))[0]
                shots = 0
                while page.locator("#screen").count():
                    position = int(page.get_attribute("#screen", "data-position"))
                    block, item, order = db_rows(study, "SELECT block, item, shown_order FROM screens WHERE "
                                                 "participant_id = ? AND position = ?", (pid, position))[0]
                    order = json.loads(order)
                    html = page.content()
                    leaked = [n for n in telltales if n in html]
                    assert not leaked, f"the page gives the methods away: {leaked}"  # blinded
                    letters = page.get_attribute("#screen", "data-letters").split(",")
                    assert letters == [chr(65 + i) for i in range(len(order))]
                    for q in ("matching", "quality"):
                        method = prefers(who, block, item, q)
                        page.check(f"#{q}-{chr(65 + order.index(method))}")
                        clicked.append((who, block, item, q, method))
                    assert page.is_disabled("#submit"), "submit must wait until every video was played"
                    for L in letters:
                        page.click(f"#play-{L}")
                        page.locator(f"#track-{L}.done").wait_for(timeout=30000)  # the page saw 'ended'
                        played = page.evaluate(f"(() => {{ const v = document.getElementById('video-{L}'); return "
                                               f"[v.currentTime, v.duration, v.webkitAudioDecodedByteCount, "
                                               f"v.webkitDecodedFrameCount]; }})()")
                        assert played[0] > 0.9 * played[1] > 0 and played[2] > 0 and played[3] > 0, played
                    expect(page.locator("#submit")).to_be_enabled()
                    if who == 1 and shots == 0:
                        shot = artifacts_dir / "listen-study-screen.png"
                        shot.unlink(missing_ok=True)
                        page.screenshot(path=str(shot), full_page=True)
                        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
                        shots += 1
                    page.click("#submit")
                    page.locator(f'#screen[data-position="{position}"]').wait_for(state="detached")
                code = db_rows(study, "SELECT completion_code FROM participants WHERE id = ?", (pid,))[0][0]
                assert page.inner_text("#code") == code
                context.close()
            browser.close()
    finally:
        server.stop()

    # The database holds exactly the clicks: 2 participants x 4 screens x 2 questions.
    rows = db_rows(study, "SELECT p.token, a.block, a.item, a.question, a.choice_method, a.choice_letter, "
                   "a.shown_order, s.shown_order, a.played, a.elapsed_ms FROM answers a JOIN participants p "
                   "ON p.id = a.participant_id JOIN screens s ON s.participant_id = a.participant_id "
                   "AND s.position = a.position")
    assert len(rows) == len(clicked) == 16
    who_of = {t: w for w, t in tokens.items()}
    got = sorted((who_of[r[0]], r[1], r[2], r[3], r[4]) for r in rows)
    assert got == sorted(clicked)
    for r in rows:
        order = json.loads(r[6])
        assert order == json.loads(r[7]) and order[ord(r[5]) - 65] == r[4]  # letter -> method, as shown
        assert json.loads(r[8]) == [chr(65 + i) for i in range(len(order))]  # every track played
        assert r[9] > 0
    plans = [db_rows(study, "SELECT block, item, shown_order FROM screens s JOIN participants p ON p.id = "
                     "s.participant_id WHERE p.token = ? ORDER BY position", (tokens[w],)) for w in (1, 2)]
    assert plans[0] != plans[1], "each participant gets their own random order"

    # The report counts the same clicks.
    rep_path = tmp_path / "report.json"
    p = listen("--report", "--study", str(study), "--json", str(rep_path))
    assert p.returncode == 0, p.stderr
    rep = json.loads(rep_path.read_text())
    from scipy.stats import binomtest

    from physdiff.listen.stats import krippendorff_alpha_nominal

    assert rep["participants"] == {"joined": 2, "complete": 2, "in_report": 2, "complete_only": False}
    for block in rep["blocks"]:
        for q in block["questions"]:
            mine = [c for c in clicked if c[1] == block["block"] and c[3] == q["question"]]
            assert q["answers"] == len(mine) == 4
            for row in q["methods"]:
                k = sum(c[4] == row["method"] for c in mine)
                assert row["selected"] == k and row["rate"] == pytest.approx(k / 4)
                ci = binomtest(k, 4).proportion_ci(method="wilson")
                assert row["wilson95"] == pytest.approx([ci.low, ci.high], abs=1e-9)
                lo, hi = row["bootstrap95"]
                assert lo - 1e-9 <= k / 4 <= hi + 1e-9
            units = [[c[4] for c in mine if c[2] == it] for it in items]
            alpha = krippendorff_alpha_nominal(units).alpha
            assert q["agreement"]["krippendorff_alpha"] == (pytest.approx(alpha) if alpha == alpha else None)
    main = {q["question"]: {m["method"]: m["selected"] for m in q["methods"]} for q in rep["blocks"][0]["questions"]}
    assert main == {"matching": {"ours": 3, "video": 1, "video_label": 0, "video_spec": 0},
                    "quality": {"ours": 2, "video": 0, "video_label": 0, "video_spec": 2}}
    assert "Table 2" in p.stdout and "Perceptual ablation: video vs video_label vs ours" in p.stdout
    assert "| ours | 75.0 % (3/4)" in p.stdout
