"""The participant's HTML pages: welcome, one screen of K blinded videos, thanks. No template engine:
four small pages, every inserted value escaped with :func:`html.escape`.

The screen page carries only letters and opaque media URLs (``<root>/p/<token>/media/<position>/<letter>``):
no method name, run path or file name reaches the browser. Its script pauses the other videos when one
plays, enables "Submit" once every video was played (to its end, by default) and every question has
an answer, and posts the answers as JSON; the server's reply decides what comes next.
"""

from __future__ import annotations

from html import escape

from physdiff.listen.study import QUESTIONS, Screen, Study

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d1d1f}
h1{font-size:1.35rem;margin:.2rem 0}.progress{color:#555;margin:.2rem 0 1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:1rem}
figure{margin:0;padding:.6rem;border:1px solid #ccc;border-radius:8px;background:#fafafa}
figure.playing{border-color:#0a66c2;box-shadow:0 0 0 2px #0a66c255}figure.done{border-color:#2e7d32}
video{width:100%;aspect-ratio:1/1;background:#000;border-radius:4px}
figcaption{display:flex;gap:.6rem;align-items:center;margin-top:.4rem;font-weight:600}
.status{font-weight:400;color:#555;font-size:.9rem}
fieldset{margin:1rem 0;border:1px solid #ccc;border-radius:8px}legend{font-weight:600;padding:0 .3rem}
fieldset label{margin-right:1.4rem;font-size:1.05rem}
button{font-size:1rem;padding:.35rem .9rem;border-radius:6px;border:1px solid #888;background:#fff;cursor:pointer}
button[type=submit]{background:#0a66c2;color:#fff;border-color:#0a66c2}button:disabled{opacity:.45;cursor:default}
#message{color:#a33;min-height:1.2em}.code{font-size:1.6rem;font-family:monospace;letter-spacing:.15em}
"""

_SCRIPT = """
(() => {
  const main = document.getElementById('screen');
  const letters = main.dataset.letters.split(',');
  const need = main.dataset.requirePlay;
  const started = {}, played = {};
  const t0 = performance.now();
  const submit = document.getElementById('submit'), msg = document.getElementById('message');
  const form = document.getElementById('answers');
  const vids = letters.map(L => document.getElementById('video-' + L));
  const status = (L, text, cls) => {
    document.getElementById('status-' + L).textContent = text;
    const fig = document.getElementById('track-' + L);
    fig.classList.remove('playing');
    if (cls) fig.classList.add(cls);
  };
  const enough = L => need === 'none' || (need === 'start' ? started[L] : played[L]);
  function ready() {
    const allPlayed = letters.every(enough);
    const answered = [...form.querySelectorAll('fieldset[data-question]')].every(f => f.querySelector('input:checked'));
    submit.disabled = !(allPlayed && answered);
    msg.textContent = !allPlayed ? 'Play every video' + (need === 'end' ? ' to the end' : '') + ' before answering.'
                    : (!answered ? 'Answer every question.' : '');
  }
  vids.forEach((v, i) => {
    const L = letters[i];
    v.addEventListener('play', () => {
      started[L] = true;
      vids.forEach(o => { if (o !== v) o.pause(); });
      status(L, 'playing', 'playing'); ready();
    });
    v.addEventListener('pause', () => { if (!v.ended) status(L, played[L] ? 'played' : 'paused', played[L] ? 'done' : null); });
    v.addEventListener('ended', () => { played[L] = true; status(L, 'played', 'done'); ready(); });
    v.addEventListener('error', () => status(L, 'could not load this video'));
  });
  document.querySelectorAll('button.play').forEach(b => b.addEventListener('click', () => {
    const v = document.getElementById('video-' + b.dataset.letter);
    v.currentTime = 0;
    v.play().catch(() => status(b.dataset.letter, 'press play on the video'));
  }));
  form.addEventListener('change', ready);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    submit.disabled = true;
    const choices = {};
    form.querySelectorAll('fieldset[data-question]').forEach(f => {
      choices[f.dataset.question] = f.querySelector('input:checked').value;
    });
    const body = {position: Number(main.dataset.position), choices,
                  elapsed_ms: Math.round(performance.now() - t0), played: letters.filter(L => played[L])};
    try {
      const res = await fetch(main.dataset.answerUrl, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                     body: JSON.stringify(body)});
      const reply = await res.json().catch(() => ({}));
      if (res.ok) { msg.textContent = 'Saved.'; location.replace(reply.next); return; }
      msg.textContent = reply.detail || ('The answer was not saved (error ' + res.status + ').');
      submit.disabled = res.status === 409;
    } catch (e) {
      msg.textContent = 'The answer was not saved (no connection); try again.';
      submit.disabled = false;
    }
  });
  ready();
})();
"""


def _page(title: str, body: str, nonce: str, script: str = "") -> str:
    js = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
            f'<style nonce="{nonce}">{_CSS}</style></head><body>{body}{js}</body></html>')


def welcome_page(study: Study, root: str, nonce: str, invite_only: bool) -> str:
    n = len(study.items) * len(study.blocks)
    k = max(len(b.methods) for b in study.blocks)
    action = (f'<p>This study is by invitation: open the personal link you were given.</p>' if invite_only else
              f'<form method="post" action="{escape(root)}/start"><button type="submit" id="start">Start</button></form>')
    body = (f"<h1>{escape(study.title)}</h1>"
            f"<p>You will see {n} screens. Each shows the same video {k} times, each time with a different sound. "
            f"Watch and listen to every video (headphones help), then answer the questions. There are no right or "
            f"wrong answers; your first answer to each screen is final.</p>{action}")
    return _page(study.title, body, nonce)


def screen_page(study: Study, screen: Screen, token: str, root: str, nonce: str, done: int, total: int) -> str:
    block = study.block(screen.block)
    base = f"{root}/p/{token}"
    figs = "".join(
        f'<figure class="track" id="track-{L}" data-letter="{L}">'
        f'<video id="video-{L}" src="{escape(base)}/media/{screen.position}/{L}" preload="auto" playsinline controls>'
        f'</video><figcaption>Video {L} <button type="button" class="play" data-letter="{L}" id="play-{L}">'
        f'&#9654; Play {L}</button><span class="status" id="status-{L}">not played</span></figcaption></figure>'
        for L in screen.letters)
    fields = "".join(
        f'<fieldset data-question="{q}" id="q-{q}"><legend>{escape(QUESTIONS[q])}</legend>'
        + "".join(f'<label><input type="radio" name="{q}" value="{L}" id="{q}-{L}"> {L}</label>' for L in screen.letters)
        + "</fieldset>" for q in block.questions)
    need = {"end": "Play every video to the end, then answer.", "start": "Play every video, then answer.",
            "none": "Watch the videos, then answer."}[study.require_play]
    body = (f"<header><h1>{escape(study.title)}</h1><p class='progress' id='progress'>Screen {done + 1} of {total}. "
            f"{need}</p></header>"
            f'<main id="screen" data-position="{screen.position}" data-letters="{",".join(screen.letters)}" '
            f'data-require-play="{study.require_play}" data-answer-url="{escape(base)}/answer">'
            f'<div class="grid">{figs}</div><form id="answers">{fields}'
            f'<button type="submit" id="submit" disabled>Submit and continue</button><p id="message" role="status"></p>'
            f"</form></main>")
    return _page(study.title, body, nonce, _SCRIPT)


def done_page(study: Study, code: str, nonce: str) -> str:
    body = (f"<h1>{escape(study.title)}</h1><p id='done'>Thank you: every screen is answered.</p>"
            f"<p>Your completion code:</p><p class='code' id='code'>{escape(code)}</p>")
    return _page(study.title, body, nonce)


def message_page(title: str, text: str, nonce: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>", nonce)
