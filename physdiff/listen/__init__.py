"""The paper's human listening study (Table 2) as a tool: blinded, randomised, answers in SQLite.

- :mod:`~physdiff.listen.runs`: reading finished generate runs (the study's input);
- :mod:`~physdiff.listen.study`: a study folder (design, media copied in, per-participant plans);
- :mod:`~physdiff.listen.store`: participants and answers (SQLite);
- :mod:`~physdiff.listen.app`, :mod:`~physdiff.listen.pages`, :mod:`~physdiff.listen.server`: the web app;
- :mod:`~physdiff.listen.report`, :mod:`~physdiff.listen.stats`: Table 2, intervals, agreement;
- :mod:`~physdiff.listen.cli`: ``physdiff listen create|serve|invite|report`` (``python -m physdiff.listen``).

Usage and how to run a study with real participants: ``docs/listening.md``.
"""
