"""Evaluation (paper Sec. 4): Table 1 metrics (:mod:`.metrics`), the report (:mod:`.report`),
sound editing on the physics priors (:mod:`.editing`), and the ``eval`` config section
(:mod:`.config`). Submodules are imported explicitly: ``physdiff.config`` imports
``physdiff.eval.config``, so this package must stay import-light."""
