"""Inference: a trained pipeline loaded from its run folders, conditioned, sampled and turned into sound.

Building blocks the ``generate``, ``edit`` and ``evaluate`` commands and the benchmarks share:
``load`` (rebuild trained models from run folders), ``conditioning`` (batch -> condition inputs, mu, the
condition vector), ``sampling`` (the one sampling entry point), ``index`` (the nu -> latent table),
``synthesizer`` (nu -> retrieved latent -> spectrogram -> audio), ``media`` (frames around onsets,
soundtracks, muxing, figures) and ``generate`` (everything for one video).
"""
