r"""Diffusion models, from first principles: the course package.

The **core** — the maths, at the top of the package, only torch/numpy/scipy below it. Read it in this order:

1. ``tensors``    broadcasting per-sample coefficients, batches of times
2. ``gaussians``  Gaussian log-density, KL, entropy, the reparameterised draw
3. ``schedules``  VP noise schedules in continuous time, and the maths-to-code table of names
4. ``forward``    q(x_t | x_0), one forward step, the posterior q(x_s | x_t, x_0)
5. ``denoiser``   one network, every parameterisation (ε, x̂_0, v, score), and the one model protocol
6. ``sde``        VP, sub-VP and VE SDEs: drifts, diffusions, marginals
7. ``time_grids`` sampling grids (uniform, t², uniform in λ, EDM's), and t from λ by bisection
8. ``samplers``   DDPM, DDIM, Euler–Maruyama, predictor–corrector, probability-flow ODE: plain functions
9. ``solvers``    fast ODE solvers: DPM-Solver, DPM-Solver++, PNDM, DEIS, UniPC (exponential integrators in λ)
10. ``analytic_dpm`` Analytic-DPM: the optimal reverse variance of a DDPM step from the model's ε̂
11. ``guidance``  classifier and classifier-free guidance, as models that hold a denoiser
12. ``oracles``   exact denoisers (Gaussian, Gaussian mixture, finite data set) for checking everything else
13. ``ode``       the one bridge to scipy's ODE solvers
14. ``paths``     Gaussian probability paths (straight, VP), velocity models for flow matching, Euler/Heun on them

Around it, by role (each layer imports only the core and the layers listed before it; a test checks this):

- ``config``      profile, device, seeds, cache folder (below everything but the core)
- ``nets/``       time and label embeddings, the MLP, the UNet (and its learned-variance twin), the classifier
- ``data/``       2-D toys, the analytic mixture, digits, MNIST, grey levels
- ``training/``   losses (diffusion, flow matching), the loop, checkpoints, the cache, the model zoo and the flows
- ``eval/``       metrics (sliced Wasserstein, the FD ratio), likelihoods (variational bound, PF-ODE)
- ``viz``, ``course_map``  pictures and the map of the papers
- ``lessons/``    what only one chapter uses, one module per chapter (``ch01_neq``, ``ch05_sde``, ...)
- ``exercises/``  the exercise checkers, one module per chapter

Nothing imports ``lessons`` or ``exercises`` except each other. Import submodules explicitly, e.g.
``from utils import schedules, samplers`` or ``from utils.training import zoo``.
"""

__version__ = "0.1.0"
