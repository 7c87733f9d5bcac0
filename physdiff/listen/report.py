"""Table 2 of a listening study: selection rate per method per question, intervals, agreement.

    rep = study_report(study, store)            # a JSON-able dict
    print(format_report(rep))                   # the Markdown tables `listen report` prints

For each block (``main``: every method; ``ablation``: video / video + label / ours) and question
(matching, quality), a method's *selection rate* is the share of answers that picked it; chance is
1 / K for K methods on the screen. Each rate gets two 95 % intervals:

- **Wilson** over answers (every answer counted as independent), and
- **participant bootstrap** (participants resampled with replacement, their answers kept together),
  which widens when participants disagree with each other. With few participants the bootstrap has
  few distinct resamples and is rough: the report says so below 10 participants.

Agreement between participants, per block and question, is **Krippendorff's alpha** (nominal) over
units = items, ratings = the methods the participants picked: it allows a different number of
participants per item (drop-outs), and 0 means agreement no higher than the pooled choices predict.
Its parts are printed: the observed share of agreeing pairs, against uniform chance 1 / K and against
the chance the pooled choices give. A shared overall preference (everyone tends to pick ours) shows as
agreeing pairs above 1 / K; alpha above 0 says participants also agree item by item beyond it.
Fleiss' kappa is printed as well when every item has the same number of raters.

Also printed: choices by shown position (A, B, ...), whose departure from 1 / K measures position bias
the randomisation is there to cancel; and how many answers were given without every track played.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from physdiff.listen.stats import fleiss_kappa, krippendorff_alpha_nominal, participant_bootstrap, wilson_interval
from physdiff.listen.store import AnswerStore
from physdiff.listen.study import QUESTIONS, Study

FEW_PARTICIPANTS = 10


def study_report(study: Study, store: AnswerStore, *, n_boot: int = 2000, seed: int = 0,
                 complete_only: bool = False) -> dict[str, Any]:
    """Every number of the report (see the module docstring) as a JSON-able dict."""
    participants = store.participants()
    answers = store.answers()
    n_screens = len(study.blocks) * len(study.items)
    screens_done: dict[int, set] = defaultdict(set)
    for a in answers:
        screens_done[a.participant_id].add(a.position)
    complete = {p.id for p in participants if len(screens_done[p.id]) >= n_screens}
    if complete_only:
        answers = [a for a in answers if a.participant_id in complete]
    used = sorted({a.participant_id for a in answers})

    blocks = []
    for b in study.blocks:
        questions = []
        for q in b.questions:
            rows = [a for a in answers if a.block == b.name and a.question == q]
            m_index = {m: j for j, m in enumerate(b.methods)}
            p_index = {p: i for i, p in enumerate(sorted({a.participant_id for a in rows}))}
            counts = np.zeros((len(p_index), len(b.methods)))  # (P, M)
            for a in rows:
                counts[p_index[a.participant_id], m_index[a.choice_method]] += 1
            totals = counts.sum(axis=1)  # (P,)
            lo, hi = participant_bootstrap(counts, totals, n_boot=n_boot, seed=seed)
            n = len(rows)
            methods = []
            for m, j in m_index.items():
                k = int(counts[:, j].sum())
                wl, wh = wilson_interval(k, n)
                methods.append({"method": m, "selected": k, "answers": n, "rate": k / n if n else None,
                                "wilson95": [wl, wh] if n else None,
                                "bootstrap95": [float(lo[j]), float(hi[j])] if n else None})
            by_item: dict[str, list[str]] = defaultdict(list)
            for a in rows:
                by_item[a.item].append(a.choice_method)
            agr = krippendorff_alpha_nominal(list(by_item.values()))
            raters = sorted({len(v) for v in by_item.values()})
            kappa = None
            if len(raters) == 1 and raters[0] >= 2:
                table = np.array([[v.count(m) for m in b.methods] for v in by_item.values()])  # (items, M)
                kappa = fleiss_kappa(table)
            position = [0] * len(b.methods)
            for a in rows:
                position[ord(a.choice_letter) - ord("A")] += 1
            not_played = sum(1 for a in rows if len(a.played) < len(a.shown_order))
            questions.append({
                "question": q, "text": QUESTIONS[q], "answers": n, "participants": len(p_index),
                "chance": 1 / len(b.methods), "methods": methods,
                "agreement": {"krippendorff_alpha": _num(agr.alpha), "observed": _num(agr.observed),
                              "expected": _num(agr.expected), "uniform": 1 / len(b.methods), "units": agr.units, "ratings": agr.ratings,
                              "raters_per_unit": raters, "fleiss_kappa": _num(kappa)},
                "by_position": {chr(ord("A") + i): c for i, c in enumerate(position)},
                "answers_without_every_track_played": not_played,
            })
        blocks.append({"block": b.name, "methods": list(b.methods), "questions": questions})

    times = [a.elapsed_ms for a in answers if a.elapsed_ms is not None and a.question == study.blocks[0].questions[0]]
    return {
        "study_id": study.study_id, "title": study.title, "items": len(study.items), "screens": n_screens,
        "methods": [{"name": m.name, "variant": m.variant, "source": m.source} for m in study.methods],
        "participants": {"joined": len(participants), "complete": len(complete), "in_report": len(used),
                         "complete_only": complete_only},
        "answers": len(answers), "median_seconds_per_screen": float(np.median(times)) / 1000 if times else None,
        "intervals": {"wilson": "Wilson score over answers", "bootstrap": f"percentile, {n_boot} resamples of "
                      f"participants (seed {seed})"},
        "agreement": "Krippendorff's alpha (nominal) over items; Fleiss' kappa when every item has equal raters",
        "ablation": study.ablation, "blocks": blocks,
    }


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _ci(ci: list[float] | None) -> str:
    return "—" if ci is None else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}"


def _f(x: float | None, nd: int = 3) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _block_table(block: dict[str, Any]) -> list[str]:
    qs = block["questions"]
    head = "| method | " + " | ".join(f"{q['question'].capitalize()} | 95 % Wilson | 95 % bootstrap" for q in qs) + " |"
    sep = "| --- | " + " | ".join("---: | ---: | ---:" for _ in qs) + " |"
    lines = [head, sep]
    for j, m in enumerate(block["methods"]):
        cells = []
        for q in qs:
            r = q["methods"][j]
            cells.append(f"{_pct(r['rate'])} ({r['selected']}/{r['answers']}) | {_ci(r['wilson95'])} | "
                         f"{_ci(r['bootstrap95'])}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def format_report(rep: dict[str, Any]) -> str:
    """The report as Markdown: Table 2 (main block), the ablation block, agreement and checks."""
    p = rep["participants"]
    out = [f"# {rep['title']} (study {rep['study_id']})", "",
           f"{p['joined']} participants joined, {p['complete']} completed all {rep['screens']} screens; "
           f"{p['in_report']} in this report{' (completed only)' if p['complete_only'] else ''}, "
           f"{rep['answers']} answers"
           + (f", median {rep['median_seconds_per_screen']:.1f} s per screen" if rep["median_seconds_per_screen"] else "")
           + ".", ""]
    if p["in_report"] < FEW_PARTICIPANTS:
        out += [f"Note: {p['in_report']} participants is few: the bootstrap intervals and the agreement are rough "
                f"(aim for {FEW_PARTICIPANTS} or more).", ""]
    out += ["Methods: " + "; ".join(f"{m['name']} ({m['variant'] or 'recording'}: {m['source']})"
                                    for m in rep["methods"]), ""]
    abl = rep.get("ablation") or {}
    for block in rep["blocks"]:
        k = len(block["methods"])
        if block["block"] == "main":
            title = f"## Table 2: selection rate per method ({k} methods per screen, chance {100 / k:.1f} %)"
        else:
            title = (f"## Perceptual ablation: {' vs '.join(block['methods'])} "
                     f"({k} methods per screen, chance {100 / k:.1f} %)")
        out += [title, ""] + _block_table(block) + [""]
        if block["block"] == "main" and abl.get("block") == "main":
            out += ["The study's methods are exactly the ablation's (video, video + label, ours): this table is also "
                    "the perceptual ablation.", ""]
    if abl.get("block") is None:
        out += [f"Perceptual ablation: not asked ({abl.get('reason', 'no ablation runs')}).", ""]
    out += ["## Agreement between participants", "",
            "| block | question | items | raters per item | agreeing pairs | chance: uniform | chance: pooled choices | "
            "Krippendorff's α | Fleiss' κ |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for block in rep["blocks"]:
        for q in block["questions"]:
            a = q["agreement"]
            raters = "–".join(str(r) for r in (a["raters_per_unit"][:1] + a["raters_per_unit"][-1:])
                              ) if len(a["raters_per_unit"]) > 1 else str((a["raters_per_unit"] or ["—"])[0])
            out.append(f"| {block['block']} | {q['question']} | {a['units']} | {raters} | {_pct(a['observed'])} | "
                       f"{_pct(a['uniform'])} | {_pct(a['expected'])} | {_f(a['krippendorff_alpha'])} | {_f(a['fleiss_kappa'])} |")
    out += ["", "Agreeing pairs: the share of pairs of participants who picked the same method for the same item "
            "(uniform chance: 1 / K). α and κ: 1 = always agree, 0 = no more than the pooled choices predict, < 0 = "
            "less. Participants who share an overall preference but not item by item have agreeing pairs above "
            "1 / K and α near 0. Items with one rater do not count; — : undefined (fewer than 2 raters per item, "
            "or no variation).", "", "## Checks", ""]
    for block in rep["blocks"]:
        for q in block["questions"]:
            n = q["answers"]
            pos = ", ".join(f"{L} {_pct(c / n) if n else '—'}" for L, c in q["by_position"].items())
            out.append(f"- {block['block']} / {q['question']}: choices by position {pos} (chance {_pct(q['chance'])}); "
                       f"{q['answers_without_every_track_played']} of {n} answers without every track played")
    out += ["", f"Intervals: Wilson = {rep['intervals']['wilson']}; bootstrap = {rep['intervals']['bootstrap']}."]
    return "\n".join(out) + "\n"
