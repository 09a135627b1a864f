"""What only one chapter uses, one module per chapter (``chNN_topic``). Nothing outside ``lessons`` and
``exercises`` imports these: what two chapters share belongs in the core or a layer below.

- ch01: ``ch01_neq`` (the 2015 model and its bound), ``ch01_kernels`` (exact mixture reverse kernels),
  ``ch01_binomial`` (binomial diffusion)
- ch02: ``ch02_langevin`` (Langevin dynamics, NCSN's ladders), ``ch02_score_matching`` (score-matching losses, NCSN)
- ch03: ``ch03_learned_variance`` (Improved DDPM's learned variances and hybrid loss)
- ch04: ``ch04_ddim`` (DDIM's non-Markovian family, sub-sequences, inversion, the Table 1 grid)
- ch05: ``ch05_sde`` (chains as SDE discretisations, exact mixture scores, Table 1 of the score-SDE paper)
- ch06: ``ch06_guidance`` (noise-aware classifier, guided sampling and its evaluation, the labelled mixture)
"""
