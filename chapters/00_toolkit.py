# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 00 — Toolkit: Gaussians, KL, the data, and a first look at noising
#
# *Diffusion models, from first principles* — chapter 00.
#
# **What you will learn**
# - the three facts about Gaussians that every diffusion paper uses: the reparameterisation trick, the KL
#   divergence between two Gaussians in closed form, and what happens when you scale a Gaussian and add
#   Gaussian noise (it stays Gaussian — and two noising steps are one noising step);
# - Bayes' rule for Gaussians, which gives the best possible denoiser of Gaussian data;
# - the data sets of the course: 2-D toys, an analytic Gaussian mixture whose score is exact at every
#   noise level, and real handwritten digits;
# - what "noising" looks like, with a slider for the time `t`;
# - the course map: how the papers relate and which chapter teaches each.
#
# **Prerequisites**: Python, a little PyTorch, probability at the level of "mean, variance, density".
#
# **Where this sits**: the start. Every later chapter uses the notation and the functions introduced here.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from utils import data, forward, gaussians, oracles, schedules, viz
from utils.config import environment_report, start_chapter
from utils.eval.metrics import fd_ratio
from utils.lessons.ch00_toolkit import (integrates_to_one, kl_matches_monte_carlo, kl_nonnegative, moments_match,
                                       posterior_slope_matches, posterior_variance_matches,
                                       reparameterised_gradients_match, score_matches_autograd, standard_normal,
                                       two_steps_are_one_jump)
from utils.course_map import draw_course_map, draw_package_layers

profile, device, gen = start_chapter(seed=0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Your environment
#
# The course runs in three *profiles* (set `COURSE_PROFILE`, or let the course choose `gpu` when CUDA is
# present and `cpu` otherwise): `smoke` (tiny, for CI), `cpu` (2-D toys and 8x8 digits, from seconds to
# about four minutes of training per model, shipped trained in `checkpoints/` — the stored outputs of every
# chapter come from this profile), and `gpu` (28x28 MNIST, full-size networks). The same code runs in all three;
# only sizes change.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
for key, value in environment_report().items():
    print(f"{key:>10}: {value}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Sampling a Gaussian, and the reparameterisation trick
#
# A scalar Gaussian $x \sim \mathcal N(\mu, s^2)$ can be drawn by drawing a *standard* normal
# $\varepsilon \sim \mathcal N(0, 1)$ and setting
#
# $$x = \mu + s\,\varepsilon .$$
#
# Why this is right: an affine map of a Gaussian is Gaussian, with
# $\mathbb E[x] = \mu + s\,\mathbb E[\varepsilon] = \mu$ and
# $\operatorname{Var}[x] = s^2 \operatorname{Var}[\varepsilon] = s^2$.
#
# The trick is what it does to gradients. An expectation $\mathbb E_{x\sim\mathcal N(\mu,s^2)}[f(x)]$ depends
# on $\mu, s$ through the *distribution*; rewritten as $\mathbb E_{\varepsilon}[f(\mu + s\varepsilon)]$, the
# parameters sit inside $f$, so
#
# $$\frac{\partial}{\partial \mu}\,\mathbb E[f(x)] = \mathbb E_\varepsilon[f'(\mu+s\varepsilon)], \qquad
#   \frac{\partial}{\partial s}\,\mathbb E[f(x)] = \mathbb E_\varepsilon[f'(\mu+s\varepsilon)\,\varepsilon],$$
#
# and a Monte Carlo average of autograd gradients is an unbiased estimate. For $f(x) = x^2$ we know the
# answer in closed form: $\mathbb E[x^2] = \mu^2 + s^2$, so the gradients are $2\mu$ and $2s$. Diffusion
# training uses exactly this: $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ is a reparameterised sample.
#
# The checks below compare Monte Carlo estimates with the claimed values within five standard errors of the
# estimate (`utils.lessons.ch00_toolkit`): the moments of 400,000 reparameterised samples, and the gradients that
# autograd returns for the Monte Carlo average of $x^2$ (the standard errors come from the per-sample gradients
# $2x$ and $2x\varepsilon$). Each check is also handed the nearest wrong answer, which it must reject: a variance
# where the std belongs, and a lost factor 2 in each gradient.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
mu, s = 0.7, 1.3
eps = torch.randn(400_000, generator=gen, dtype=torch.float64)
x = mu + s * eps                                   # reparameterised sample
print("sample mean and std match mu and s:", moments_match(x, mu, s))
print("the check rejects std s^2 (a variance where the std belongs):", not moments_match(x, mu, s**2))


def gradient_check(grad_mu, grad_s):
    """Autograd of the Monte Carlo E[x^2], x = mu + s * eps, against the claimed gradients."""
    return reparameterised_gradients_match(grad_mu, grad_s, mu, s, generator=torch.Generator().manual_seed(5))


print("d/dmu E[x^2] = 2 mu and d/ds E[x^2] = 2 s:", gradient_check(lambda mu, s: 2 * mu, lambda mu, s: 2 * s))
print("the check rejects d/dmu = mu (a lost factor 2):", not gradient_check(lambda mu, s: mu, lambda mu, s: 2 * s))
print("the check rejects d/ds = s (a lost factor 2):", not gradient_check(lambda mu, s: 2 * mu, lambda mu, s: s))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The KL divergence between two Gaussians
#
# Diffusion objectives are sums of KL divergences between Gaussians. For
# $p = \mathcal N(\mu_1, v_1)$ and $q = \mathcal N(\mu_2, v_2)$ (variances $v$), with
# $\log \mathcal N(x;\mu,v) = -\tfrac12\left[\log(2\pi v) + (x-\mu)^2/v\right]$:
#
# $$\mathrm{KL}(p\,\|\,q) = \mathbb E_p\!\left[\log p(x) - \log q(x)\right]
# = \tfrac12\,\mathbb E_p\!\left[\log\tfrac{v_2}{v_1} - \tfrac{(x-\mu_1)^2}{v_1} + \tfrac{(x-\mu_2)^2}{v_2}\right].$$
#
# Under $p$: $\mathbb E_p[(x-\mu_1)^2] = v_1$, and writing $x - \mu_2 = (x-\mu_1) + (\mu_1-\mu_2)$,
# $\mathbb E_p[(x-\mu_2)^2] = v_1 + (\mu_1-\mu_2)^2$ (the cross term has mean zero). Hence
#
# $$\boxed{\mathrm{KL}\big(\mathcal N(\mu_1,v_1)\,\|\,\mathcal N(\mu_2,v_2)\big)
# = \tfrac12\left[\log\frac{v_2}{v_1} + \frac{v_1 + (\mu_1-\mu_2)^2}{v_2} - 1\right].}$$
#
# For $D$ independent coordinates the KL is the sum over coordinates. Two things to notice, both used in
# chapter 03: if the variances are equal, the KL is $\frac{(\mu_1-\mu_2)^2}{2v}$ — a squared error (an identity:
# the log term vanishes and $v/v - 1 = 0$); and it is $0$ only when the two Gaussians are identical.
#
# The check compares the formula with a Monte Carlo average of $\log p(x) - \log q(x)$ over $x \sim p$, within five
# standard errors, and must reject two near misses: the variance ratio upside down ($\log\frac{v_1}{v_2}$), and
# the formula without its $\tfrac12$.

# %% slideshow={"slide_type": "subslide"}
def kl_inline(m1, v1, m2, v2):
    """The boxed formula, elementwise."""
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
m1, v1, m2, v2 = 0.3, 0.5, -0.4, 1.7


def kl_swapped(m1, v1, m2, v2):
    """A near miss: the variance ratio upside down."""
    return 0.5 * (torch.log(v1 / v2) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def kl_without_half(m1, v1, m2, v2):
    """A near miss: the boxed formula without its 1/2."""
    return torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1


def kl_check(kl):
    return kl_matches_monte_carlo(kl, m1, v1, m2, v2, generator=torch.Generator().manual_seed(6))


print("closed form matches Monte Carlo E_p[log p - log q]:", kl_check(kl_inline))
print("the check rejects log(v1/v2) in place of log(v2/v1):", not kl_check(kl_swapped))
print("the check rejects the formula without its 1/2:", not kl_check(kl_without_half))
m1_, v1_, m2_, v2_ = (torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2))
print("inline formula == utils.gaussians.kl_normal:",
      torch.allclose(kl_inline(m1_, v1_, m2_, v2_), gaussians.kl_normal(m1_, v1_, m2_, v2_)))
grid = torch.linspace(-3, 3, 61, dtype=torch.float64)
print("KL >= 0 on a grid of means m2:", kl_nonnegative(kl_inline, m1, v1, grid, v2))
print("the check rejects the swapped ratio, which goes negative:", not kl_nonnegative(kl_swapped, m1, v1, grid, v2))
print(f"identity, equal variances: KL = {kl_inline(m1_, v2_, m2_, v2_).item():.4f} "
      f"= (m1 - m2)^2 / (2 v) = {(m1 - m2) ** 2 / (2 * v2):.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Scaling and adding noise: Gaussians stay Gaussian
#
# Let $x_0 \sim \mathcal N(m, s^2)$ and, independently, $\varepsilon \sim \mathcal N(0,1)$. Then
# $x = a\,x_0 + b\,\varepsilon$ is a sum of independent Gaussians, hence Gaussian, with
#
# $$\mathbb E[x] = a m, \qquad \operatorname{Var}[x] = a^2 s^2 + b^2 .$$
#
# **Two noising steps are one noising step.** Diffusion's forward step (Ho et al. 2020, Eq. 2) is
# $x_n = \sqrt{1-\beta_n}\,x_{n-1} + \sqrt{\beta_n}\,\varepsilon_n$. Two of them give
#
# $$x_2 = \sqrt{1-\beta_2}\sqrt{1-\beta_1}\,x_0 + \underbrace{\sqrt{1-\beta_2}\sqrt{\beta_1}\,\varepsilon_1
#   + \sqrt{\beta_2}\,\varepsilon_2}_{\text{Gaussian, variance } (1-\beta_2)\beta_1 + \beta_2}
#   \quad\Longrightarrow\quad x_2 = \sqrt{\bar\alpha_2}\,x_0 + \sqrt{1-\bar\alpha_2}\,\varepsilon,$$
#
# because $(1-\beta_2)\beta_1 + \beta_2 = 1 - (1-\beta_1)(1-\beta_2) = 1-\bar\alpha_2$ with
# $\bar\alpha_n = \prod_{i\le n}(1-\beta_i)$. By induction, $n$ steps are one step with
# $x_n = \sqrt{\bar\alpha_n}\,x_0 + \sqrt{1-\bar\alpha_n}\,\varepsilon$. The variance of a unit-variance
# signal stays exactly 1 at every step — hence the name *variance preserving*.
#
# The same argument composes any two forward jumps s → t → u. The check below noises N(0.5, 0.3²) data over two long
# jumps of DDPM's schedule (t = 0 → 0.3 → 0.6) and compares mean and variance with one jump, within five Monte
# Carlo standard errors. It also runs the check on the two nearest wrong answers, which it must reject: noise
# of std β where √β belongs, and no noise at all. (Over the first two DDPM steps these could not be told
# apart: there β ≈ 10⁻⁴ changes the variance by about 2·10⁻⁴, less than the Monte Carlo error of 200,000 samples.)
#
# ### Notation used in the whole course
#
# Papers disagree about symbols (DDPM's $\alpha_t$ is $1-\beta_t$; DDIM's $\alpha_t$ is DDPM's $\bar\alpha_t$).
# The course fixes one set of names, in maths and in code alike (`utils/schedules.py` holds the table):
#
# | maths | code | meaning |
# |---|---|---|
# | $\bar\alpha_t$ | `alpha_bar(t)` | fraction of signal *variance* left at time $t$ |
# | $\alpha_t = \sqrt{\bar\alpha_t}$ | `alpha(t)` | signal coefficient: $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ |
# | $\sigma_t = \sqrt{1-\bar\alpha_t}$ | `sigma(t)` | noise coefficient |
# | $\lambda_t = \log(\alpha_t/\sigma_t)$ | `lam(t)` | half the log signal-to-noise ratio |
# | $\beta_n$ (DDPM, $n = 1..T$) | `betas[n-1]` | per-step noise; $1-\beta_n = \bar\alpha_n/\bar\alpha_{n-1}$ |
#
# Time is continuous, $t\in[0,1]$; **DDPM's step $n$ of $T$ is $t = n/T$**, and
# `alpha_bar(n / T)` equals the paper's $\bar\alpha_n$ exactly.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
sch = schedules.ddpm_linear(T=1000)
ab2 = (1 - sch.betas[0]) * (1 - sch.betas[1])
print("alpha_bar(2/T) is the product of (1 - beta):", torch.allclose(sch.alpha_bar(torch.tensor(2 / 1000, dtype=torch.float64)), ab2))


def q_step_std_as_variance(schedule, x, t_prev, t, generator=None):
    """The nearest wrong answer: noise std 1 - alpha_bar_t/alpha_bar_s (DDPM's beta) where the square root belongs."""
    ratio = (schedule.alpha_bar(torch.tensor(t)) / schedule.alpha_bar(torch.tensor(t_prev))).item()
    return ratio**0.5 * x + (1 - ratio) * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def no_noise(schedule, x, t_prev, t, generator=None):
    return x


def two_step_check(step):
    return two_steps_are_one_jump(step, sch, 0.5, 0.3, 0.3, 0.6, generator=torch.Generator().manual_seed(3))


print("two steps 0 -> 0.3 -> 0.6 of utils.forward.q_step are one jump (mean a*m, variance a^2 s^2 + b^2):",
      two_step_check(forward.q_step))
print("the check rejects noise std beta instead of sqrt(beta):", not two_step_check(q_step_std_as_variance))
print("the check rejects no noise at all:", not two_step_check(no_noise))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Bayes' rule for Gaussians: the best denoiser of Gaussian data
#
# Suppose $x_0 \sim \mathcal N(m, s^2)$ and we observe $x_t = \alpha x_0 + \sigma\varepsilon$. The pair
# $(x_0, x_t)$ is jointly Gaussian with $\operatorname{Cov}[x_0, x_t] = \alpha s^2$ and
# $\operatorname{Var}[x_t] = \alpha^2 s^2 + \sigma^2$, so the conditional mean is the linear regression
#
# $$\mathbb E[x_0 \mid x_t] = m + \frac{\alpha s^2}{\alpha^2 s^2 + \sigma^2}\,(x_t - \alpha m),
# \qquad \operatorname{Var}[x_0\mid x_t] = s^2 - \frac{\alpha^2 s^4}{\alpha^2 s^2 + \sigma^2}
# = \frac{s^2\sigma^2}{\alpha^2 s^2+\sigma^2}.$$
#
# $\mathbb E[x_0\mid x_t]$ is the denoiser with the smallest squared error — what a diffusion network is
# trained to approximate. For Gaussian data it is known exactly; `utils.oracles` has it (and the exact
# denoisers of Gaussian mixtures and of finite data sets), and the tests use these oracles to check every
# sampler. The checks below fit the regression on simulated pairs at t = 0.1 and compare its slope and its residual
# variance with the formulas, within five Monte Carlo standard errors. At t = 0.1 the posterior variance is about half
# the prior's s² (at t = 0.4 the two differ by only 2 %, too little to reject the wrong answer "the variance is still
# s²" with confidence). The nearest wrong answers: for the slope, $\alpha s^2/(s^2+\sigma^2)$ ($\operatorname{Var}[x_t]$
# written without the $\alpha^2$); for the variance, the prior's $s^2$.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
m, s_data, t = 0.5, 0.3, 0.4
a, sig = sch.alpha(torch.tensor(t)).item(), sch.sigma(torch.tensor(t)).item()
slope = a * s_data**2 / (a**2 * s_data**2 + sig**2)


def slope_check(slope_fn):
    return posterior_slope_matches(slope_fn, sch, m, s_data, 0.1, generator=torch.Generator().manual_seed(4))


print("at t = 0.1 the regression slope matches alpha s^2 / (alpha^2 s^2 + sigma^2):",
      slope_check(lambda alpha, sigma, s: alpha * s**2 / (alpha**2 * s**2 + sigma**2)))
print("the check rejects alpha s^2 / (s^2 + sigma^2) (a lost alpha^2):",
      not slope_check(lambda alpha, sigma, s: alpha * s**2 / (s**2 + sigma**2)))


def variance_check(variance):
    return posterior_variance_matches(variance, sch, m, s_data, 0.1, generator=torch.Generator().manual_seed(4))


print("at t = 0.1 the residual variance matches s^2 sigma^2 / (alpha^2 s^2 + sigma^2):",
      variance_check(lambda alpha, sigma, s: s**2 * sigma**2 / (alpha**2 * s**2 + sigma**2)))
print("the check rejects the prior's variance s^2 (the nearest wrong answer):",
      not variance_check(lambda alpha, sigma, s: s**2))
oracle = oracles.gaussian_denoiser(torch.tensor([m]), torch.tensor([[s_data**2]]), sch)
probe = torch.tensor([[-1.0], [0.0], [0.3], [2.0]], dtype=torch.float64)
print("formula == utils.oracles.gaussian_denoiser:",
      torch.allclose(oracle.x0(probe, t), m + slope * (probe - a * m), atol=1e-6))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The data of the course
#
# Nothing is downloaded in the `cpu` profile: the 2-D toys are generated, the Gaussian mixture is defined
# by formulas, and the digits ship with scikit-learn (1,797 real 8x8 handwritten digits, E. Alpaydin &
# C. Kaynak, UCI, 1998), scaled to $[-1, 1]$ with a fixed train/test split. The `gpu` profile uses
# 28x28 MNIST (LeCun et al. 1998), downloaded once and verified by checksum.
#
# ### 2-D toys
# The Swiss roll is the 2-D data of Sohl-Dickstein et al. (2015, Figure 1); the others are the usual
# test beds: separated modes (8 Gaussians), thin curved manifolds (moons), sharp edges (checkerboard).

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
for ax, name in zip(axes, data.TOY_NAMES):
    viz.plot_points(data.toy(name, 3000, generator=gen), ax=ax, title=name, lim=3.0)
plt.tight_layout()
viz.save_figure(fig, "ch00_toys.png")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The analytic testbed: a Gaussian mixture, exact at every noise level
#
# If $x_0$ follows a mixture $\sum_k w_k \mathcal N(\mu_k, \Sigma_k)$, then by section 4 the noised
# variable $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ follows $\sum_k w_k\,\mathcal N(\alpha_t\mu_k,\,
# \alpha_t^2\Sigma_k + \sigma_t^2 I)$ — its density, its score $\nabla_x \log p_t(x)$ and its ideal
# denoiser are all known exactly. Later chapters use it to separate *learning* errors from
# *discretisation* errors: with the exact score, any remaining error is the sampler's.

# %% slideshow={"slide_type": "-"}
mix = data.analytic_mixture()
xx, yy = torch.meshgrid(torch.linspace(-3, 3, 120), torch.linspace(-3, 3, 120), indexing="xy")
grid_pts = torch.stack([xx.flatten(), yy.flatten()], 1)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, t in zip(axes, (0.0, 0.3, 0.6)):
    dens = mix.log_prob_t(grid_pts, sch, t).exp().reshape(120, 120)
    ax.contourf(xx, yy, dens, levels=20, cmap="Blues")
    viz.plot_vector_field(lambda p: mix.score_t(p, sch, t), ax=ax, lim=3.0, n=15)
    ax.set_title(f"p_t and its score, t = {t}")
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
p = torch.randn(64, 2, generator=gen, dtype=torch.float64)
log_p = lambda q: mix.log_prob_t(q, sch, 0.3)  # noqa: E731
print("exact score at t = 0.3 == autograd of the exact log-density:",
      score_matches_autograd(lambda q: mix.score_t(q, sch, 0.3), log_p, p))
print("the check rejects the score of another time (t = 0.6):",
      not score_matches_autograd(lambda q: mix.score_t(q, sch, 0.6), log_p, p))
print("the check rejects the opposite sign:", not score_matches_autograd(lambda q: -mix.score_t(q, sch, 0.3), log_p, p))
cell = (xx[0, 1] - xx[0, 0]).item() ** 2
print("density integrates to 1 on the grid:", integrates_to_one(log_p, grid_pts, cell))
alpha_03 = sch.alpha(torch.tensor(0.3)).item()
print("the check rejects the density without the Jacobian 1/alpha^2 of x -> alpha x:",
      not integrates_to_one(lambda q: log_p(q) + 2 * math.log(alpha_03), grid_pts, cell))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Handwritten digits
# Eight by eight pixels, 17 grey levels — small enough to train a real diffusion model on a laptop CPU
# in a few minutes, real enough that mistakes show.

# %% slideshow={"slide_type": "-"}
digits = data.image_data()
print(digits)
fig, ax = plt.subplots(figsize=(7, 3.6))
order = torch.argsort(digits.train_y[:200], stable=True)[:40]
viz.show_images(digits.train_x[order], nrow=10, ax=ax, title="training images, sorted by label")
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x_tr, y_tr = digits.train_x, digits.train_y
print("images are (N, 1, H, W) in [-1, 1]:", bool(x_tr.dim() == 4 and x_tr.shape[1] == 1 and x_tr.min() >= -1 and x_tr.max() <= 1))
print("labels are the ten digits:", sorted(y_tr.unique().tolist()) == list(range(10)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### How the course scores image samples: the FD ratio
#
# FID compares two image sets by the Fréchet distance between Gaussians fitted to their features in a
# classifier (Inception, for FID). The course does the same with a small classifier trained on the digits' train
# split (`utils.eval.metrics.feature_classifier`, trained once and cached), in its penultimate layer:
#
# $$\mathrm{FD} = \lVert\mu_a - \mu_b\rVert^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
#   - 2\operatorname{tr}\big(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2}\big)^{1/2}.$$
#
# Two finite samples of the *same* distribution never score 0, and their FD shrinks with the sample size n, so a
# raw FD means little on its own. `utils.eval.metrics.fd_ratio` therefore compares n samples with the held-out
# **test** images and divides by the **real-vs-real floor**: the FD of n **train** images to the same test images,
# averaged over 20 draws. A ratio of 1.0 means n samples cannot be told from real digits in this feature space.
# Compare ratios only at the same n: the floor shrinks with n, a real defect does not. The ratio is itself noisy
# (two sample sets of one model differ by a few tenths at n = 1000), so the chapters compare methods over several
# sample sets. Below, in this feature space: real train digits score about 1; digits of only half the classes
# score far above; and pixel noise is nearly invisible until it is large — the score measures shapes and class
# statistics as the classifier sees them, not pixel grain, so the chapters also *look* at their samples.

# %% slideshow={"slide_type": "-"}
n_fd = min(1000, len(digits.train_x))
real_x = digits.train_x[torch.randperm(len(digits.train_x), generator=torch.Generator().manual_seed(1))[:n_fd]]
candidates = {"real train digits": real_x, "digits 0-4 only": digits.train_x[digits.train_y < 5][:n_fd]}
for noise_std in (0.2, 0.5):
    noise = torch.randn(real_x.shape, generator=torch.Generator().manual_seed(2))
    candidates[f"real digits + N(0, {noise_std}²) pixel noise"] = (real_x + noise_std * noise).clamp(-1, 1)
for name, x in candidates.items():
    score = fd_ratio(x, digits, generator=0)
    print(f"{name:>36}: FD ratio {score['ratio']:6.2f} at n = {score['n']} "
          f"(a real set of this n lands within ± {score['floor_std'] / score['floor']:.2f} of 1)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. A first look at noising
#
# The forward process $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ with DDPM's linear schedule
# (Ho et al. 2020: $\beta$ from $10^{-4}$ to $0.02$, $T = 1000$) and the cosine schedule of Nichol &
# Dhariwal (2021, Eq. 17). The left panel shows how much signal variance $\bar\alpha_t$ is left; the
# right one the log signal-to-noise ratio $2\lambda_t$. The cosine schedule destroys information more slowly:
# Nichol & Dhariwal (2021, Section 3.2) found the linear schedule sub-optimal for 32x32 and 64x64 images and proposed
# the cosine one in its place; chapter 03 tests that claim on these 8x8 digits.

# %% slideshow={"slide_type": "subslide"}
lin, cos = schedules.ddpm_linear(1000), schedules.cosine(1000)
tt = torch.linspace(0.001, 1, 500, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for sc, label in ((lin, "linear (DDPM)"), (cos, "cosine (IDDPM)")):
    axes[0].plot(tt, sc.alpha_bar(tt), label=label)
    axes[1].plot(tt, 2 * sc.lam(tt), label=label)
axes[0].set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal variance left")
axes[1].set(xlabel="t", ylabel=r"$\log(\alpha_t^2/\sigma_t^2)$", title="log SNR")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same fixed noise $\varepsilon$ for every $t$, so you watch one sample travel from data to noise.

# %% slideshow={"slide_type": "-"}
image = digits.train_x[:8]
cloud = data.toy("swiss_roll", 1500, generator=gen)
eps_img = torch.randn(image.shape, generator=gen)
eps_cloud = torch.randn(cloud.shape, generator=gen)


def noising_figure(t: float, schedule=lin):
    """Noise the fixed digits and Swiss roll to time t (the same ε at every t) and draw both."""
    x_img, _ = forward.q_sample(schedule, image, t, eps=eps_img)
    x_cloud, _ = forward.q_sample(schedule, cloud, t, eps=eps_cloud)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [2, 1]})
    viz.show_images(x_img, nrow=4, ax=axes[0], title=f"digits at t = {t:.2f}")
    viz.plot_points(x_cloud, ax=axes[1], lim=3.5, title=f"alpha = {schedule.alpha(torch.tensor(t)):.2f}, sigma = {schedule.sigma(torch.tensor(t)):.2f}")
    plt.tight_layout()
    return fig


ts_show = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
fig, axes = plt.subplots(2, len(ts_show), figsize=(2.2 * len(ts_show), 4.6))
for j, t in enumerate(ts_show):
    x_img, _ = forward.q_sample(lin, image[:1], t, eps=eps_img[:1])
    x_cloud, _ = forward.q_sample(lin, cloud, t, eps=eps_cloud)
    viz.show_images(x_img, nrow=1, ax=axes[0, j], title=f"t = {t}")
    viz.plot_points(x_cloud, ax=axes[1, j], lim=3.5, s=1)
fig.suptitle("forward process, linear schedule: one digit and the Swiss roll")
plt.tight_layout()
viz.save_figure(fig, "ch00_noising.png")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Widget** — drag `t` (and switch schedules). The figure above is the static version for readers on
# GitHub. The computation is `utils.forward.q_sample` (tested against simulation in `tests/`); the widget
# only redraws.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
start = time.perf_counter()
plt.close(noising_figure(0.5))
print(f"one redraw takes {time.perf_counter() - start:.3f} s")
schedule_choice = widgets.Dropdown(options=[("linear", lin), ("cosine", cos)], description="schedule")
_ = widgets.interact(lambda t, schedule: (noising_figure(t, schedule), plt.show()),
                     t=widgets.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.01), schedule=schedule_choice)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x_end, _ = forward.q_sample(lin, cloud, 1.0, eps=eps_cloud)
print(f"at t = 1 almost no signal is left: alpha_1 = {lin.alpha(torch.tensor(1.0)).item():.4f}")
print("the noised cloud is standard normal (each coordinate's mean and std within 5 standard errors):",
      standard_normal(x_end.double()))
print("the check rejects x_0 + eps (noise added without shrinking the signal):",
      not standard_normal((cloud + eps_cloud).double()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. The course map
#
# Each box is a paper (or a family of papers), each arrow "builds directly on". The chapters follow the
# arrows. The figure is drawn by `utils.course_map` and saved to `figures/course_map.png` (README shows it).

# %% slideshow={"slide_type": "-"}
fig, ax = plt.subplots(figsize=(15, 5.6))
draw_course_map(ax)
viz.save_figure(fig, "course_map.png")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The code is layered the way the course is: the maths of the core (`utils/schedules.py`, `forward.py`,
# `denoiser.py`, `samplers.py`, ...) at the bottom, each layer above it importing only what lies below, and the
# helpers that serve a single chapter in `utils/lessons/`. A test reads every import to keep it so. To read along,
# start at the bottom.

# %% slideshow={"slide_type": "-"}
fig, ax = plt.subplots(figsize=(11, 5.6))
draw_package_layers(ax)
viz.save_figure(fig, "utils_layers.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# | chapter | what it adds | paper(s) |
# |---|---|---|
# | 01 | learn to reverse a slow noising process; the variational bound | Sohl-Dickstein et al. 2015 |
# | 02 | scores, Langevin dynamics, noise-conditional score networks | Welling & Teh 2011; Song & Ermon 2019, 2020 |
# | 03 | DDPM: ε-prediction, the simple loss, the cosine schedule | Ho et al. 2020; Nichol & Dhariwal 2021 |
# | 04 | DDIM: the same model, deterministic and fast sampling | Song, Meng & Ermon 2021 |
# | 05 | the continuous-time view: SDEs, the probability-flow ODE, exact likelihood | Song et al. 2021 |
# | 06 | steering samples: classifier and classifier-free guidance | Dhariwal & Nichol 2021; Ho & Salimans 2022 |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Exercises
#
# Each exercise has a checker in `utils.exercises.ch00`. Write your answer in the cell, run the checker;
# the reference solution is in the collapsed cell below each one (click to expand).
#
# **Exercise 1 — reparameterise.** Write `reparameterise(mean, std, eps)` returning a sample of
# $\mathcal N(\text{mean}, \text{std}^2)$ that stays differentiable in `mean` and `std`.

# %% slideshow={"slide_type": "-"}
from utils.exercises import ch00  # noqa: E402


def reparameterise(mean, std, eps):
    return mean + std * eps  # your code here (this line is a correct answer: try breaking it)


ch00.check_reparameterise(reparameterise)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — KL by hand.** Write `kl(m1, v1, m2, v2)` for two univariate Gaussians (variances `v`),
# elementwise, without calling `utils.gaussians`.

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def kl_solution(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


ch00.check_kl(kl_solution)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — the marginal of a noised Gaussian.** If $x_0 \sim \mathcal N(m, s^2)$ and
# $x_t = \alpha x_0 + \sigma\varepsilon$, return `(mean, variance)` of $x_t$. The checker compares with a
# simulation, so it does not know the formula either.

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def noised_gaussian_solution(m, s, alpha, sigma):
    return alpha * m, alpha**2 * s**2 + sigma**2


ch00.check_noised_gaussian(noised_gaussian_solution)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - $x = \mu + s\varepsilon$ samples a Gaussian *and* makes its parameters differentiable.
# - $\mathrm{KL}(\mathcal N(\mu_1,v_1)\|\mathcal N(\mu_2,v_2)) = \tfrac12[\log\frac{v_2}{v_1} +
#   \frac{v_1+(\mu_1-\mu_2)^2}{v_2} - 1]$; with equal variances it is a squared error.
# - Scaling and adding Gaussian noise keeps things Gaussian; $n$ noising steps are one step with
#   $\bar\alpha_n = \prod(1-\beta_i)$; the course writes $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ with
#   $t = n/T$.
# - For Gaussian data the best denoiser $\mathbb E[x_0\mid x_t]$ is a linear regression — the first of the
#   course's *oracles*.
#
# **Further reading**: Bishop, *Pattern Recognition and Machine Learning* (2006), §2.3 (Gaussian
# conditionals and marginals); Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, §2.4 (the
# reparameterisation trick).
#
# **Next**: chapter 01 runs the noising process on the Swiss roll and learns to *reverse* it, as
# Sohl-Dickstein et al. did in 2015.
