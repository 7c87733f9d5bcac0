"""Ray Tune studies, one module each (audiocraft-style small sweep files); ``tune`` holds what they share.

    physdiff sweep residual-dims --preset tiny          # the paper's Fig. 5a (python sweeps/residual_dims.py)
"""

STUDIES = {"residual-dims": "physdiff.sweeps.residual_dims:main"}
