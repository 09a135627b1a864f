# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 03 — DDPM: the derivation, training, sampling and likelihood; the cosine schedule
#
# *Diffusion models, from first principles* — chapter 03.
#
# **The papers.**
# - Jonathan Ho, Ajay Jain and Pieter Abbeel, *Denoising Diffusion Probabilistic Models*, NeurIPS 2020.
#   [arXiv:2006.11239](https://arxiv.org/abs/2006.11239) — "DDPM".
# - Alex Nichol and Prafulla Dhariwal, *Improved Denoising Diffusion Probabilistic Models*, ICML 2021.
#   [arXiv:2102.09672](https://arxiv.org/abs/2102.09672) — "Improved DDPM".
#
# DDPM took the 2015 model of chapter 01, changed *what the network predicts* (the noise ε) and *how the
# terms of the bound are weighted* (all equally), and got samples that rivalled GANs. Improved DDPM then
# won back the likelihood with a better noise schedule and learned variances.
#
# **What you will learn**
# - every step of the derivation: $q(x_n\mid x_0)$, the posterior $q(x_{n-1}\mid x_n, x_0)$, the bound
#   $L = L_T + \sum_n L_{n-1} + L_0$, the KL that becomes a squared error, the ε-parameterisation and the
#   weights that $L_\text{simple}$ throws away — each one checked numerically;
# - the paper's two algorithms, written in a few lines and checked against the library;
# - a real model trained on 2-D points and on digits, its reverse chain and its predictions of $x_0$;
# - the likelihood in bits/dim with a discretised decoder, against two baselines, and why training on the
#   true bound gives *better likelihoods and worse samples*;
# - the cosine schedule, learned variances and sampling with fewer steps.
#
# **Prerequisites**: chapter 00 (Gaussians, KL, the data), chapter 01 (the forward chain and the bound).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Where this sits.** DDPM is the node where the two earlier lines meet: the variational chain of
# chapter 01 (Sohl-Dickstein et al. 2015) and the noise-conditional score networks of chapter 02 (Song &
# Ermon 2019). Its trained network is reused unchanged by DDIM (chapter 04), the SDE view (chapter 05) and
# guidance (chapter 06) — through `utils.training.zoo`, which this chapter introduces.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils import forward, samplers, schedules, viz
from utils.eval import metrics
from utils.training import zoo
from utils.lessons import ch03_learned_variance as LV
from utils.eval import likelihood as L
from utils.config import by_profile, start_chapter
from utils.course_map import show_course_map
from utils.data import analytic_mixture, image_data, toy
from utils.denoiser import Denoiser
from utils.exercises import ch03
from utils.gaussians import kl_normal, log_normal, sum_features
from utils.nets import MLP
from utils.oracles import mixture_denoiser
from utils.tensors import append_dims
from utils.training import diffusion_loss

profile, device, gen = start_chapter(seed=0)

# %% slideshow={"slide_type": "-"}
show_course_map("03")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Sizes in this profile.** Everything below is sized by `by_profile`: the `smoke` profile only checks that
# every line runs; the numbers the text discusses are those of the stored `cpu` run (sklearn's 8x8 digits);
# the `gpu` profile uses MNIST 28x28 and larger models.

# %% slideshow={"slide_type": "-"}
data = image_data()
LEVELS = 17 if data.name.startswith("digits") else 256   # digits: integers 0..16; MNIST: 0..255
N_SAMPLES = by_profile(smoke=64, cpu=1000, gpu=2000)     # images per Fréchet-distance evaluation
SAMPLE_STEPS = by_profile(smoke=5, cpu=100, gpu=250)     # ancestral steps, respaced over T = 1000
N_TERMS = by_profile(smoke=8, cpu=50, gpu=100)           # bound terms evaluated (stratified over n)
test_x = data.test_x[:by_profile(smoke=64, cpu=len(data.test_x), gpu=1000)]
print(data, f"\n{LEVELS} grey levels, {len(test_x)} held-out images for the likelihood")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 0. Notation: steps n and times t
#
# DDPM numbers its steps $n = 1..T$ (the paper writes $t$); the course uses a continuous time $t \in [0, 1]$
# and puts step $n$ at $t = n/T$. Every quantity below is a function of the schedule `utils.schedules`:
#
# | DDPM paper | here | code |
# |---|---|---|
# | step $t \in \{1..T\}$ | step $n$, time $t = n/T$ | `t = n / T` |
# | $\beta_t$ | $\beta_n$ | `schedule.betas[n - 1]` |
# | $\alpha_t = 1-\beta_t$ | $1 - \beta_n$ | `1 - beta` (the name `alpha` is reserved for $\sqrt{\bar\alpha}$) |
# | $\bar\alpha_t = \prod_{i\le t}\alpha_i$ | $\bar\alpha_n$ | `schedule.alpha_bars[n]` = `schedule.alpha_bar(n / T)` |
# | $\sqrt{\bar\alpha_t}$, $\sqrt{1-\bar\alpha_t}$ | $\alpha_t$, $\sigma_t$ | `schedule.alpha(t)`, `schedule.sigma(t)` |
# | $\tilde\beta_t$, $\tilde\mu_t$ | $\tilde\beta_n$, $\tilde\mu_n$ | `forward.posterior_coefs`, `forward.posterior` |
# | $\epsilon_\theta(x_t, t)$ | $\hat\varepsilon$ | `denoiser.eps(x, t)` |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The forward process and its closed form
#
# DDPM fixes the forward chain (Eq. 2): $q(x_n \mid x_{n-1}) = \mathcal N\big(\sqrt{1-\beta_n}\,x_{n-1},\ \beta_n I\big)$,
# with $\beta_n$ rising linearly from $10^{-4}$ to $0.02$ over $T = 1000$ steps.
#
# **Claim** (Eq. 4): $q(x_n \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_n}\,x_0,\ (1-\bar\alpha_n) I\big)$, $\bar\alpha_n = \prod_{i\le n}(1-\beta_i)$.
#
# **Proof by induction.** True for $n = 1$ ($\bar\alpha_1 = 1-\beta_1$). If $x_{n-1} = \sqrt{\bar\alpha_{n-1}}\,x_0 + \sqrt{1-\bar\alpha_{n-1}}\,\bar\varepsilon$, then
# $$x_n = \sqrt{1-\beta_n}\,x_{n-1} + \sqrt{\beta_n}\,\varepsilon_n = \sqrt{\bar\alpha_n}\,x_0 + \Big[\sqrt{(1-\beta_n)(1-\bar\alpha_{n-1})}\,\bar\varepsilon + \sqrt{\beta_n}\,\varepsilon_n\Big].$$
# The bracket is a sum of independent centred Gaussians, so it is Gaussian with variance
# $(1-\beta_n)(1-\bar\alpha_{n-1}) + \beta_n = 1 - (1-\beta_n)\bar\alpha_{n-1} = 1-\bar\alpha_n$. $\square$
#
# So $x_n = \sqrt{\bar\alpha_n}\,x_0 + \sqrt{1-\bar\alpha_n}\,\varepsilon$ in one draw: training never runs the chain.
# Check: run the chain step by step for 20,000 copies of one point.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
lin = schedules.ddpm_linear(1000)
x0 = torch.tensor([[1.5, -0.5]]).expand(20_000, 2)
x, g = x0.clone(), torch.Generator().manual_seed(1)
ok = []
for n in range(1, 1001):
    x = forward.q_step(lin, x, (n - 1) / 1000, n / 1000, generator=g)
    if n in (10, 300, 1000):
        t = torch.tensor(n / 1000)
        se = lin.sigma(t) / 20_000**0.5
        ok.append(bool(((x.mean(0) - lin.alpha(t) * x0[0]).abs() < 4 * se).all()))
        ok.append(bool(((x.var(0) / lin.sigma(t) ** 2 - 1).abs() < 0.05).all()))
print("1000 simulated steps match q(x_n | x_0) = N(sqrt(abar_n) x_0, (1 - abar_n) I):", all(ok))

# %% slideshow={"slide_type": "subslide"}
ts_show = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0]
roll = toy("swiss_roll", 2000, torch.Generator().manual_seed(0))
eps_pts = torch.randn(roll.shape, generator=torch.Generator().manual_seed(1))
imgs = data.test_x[:8]
eps_img = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(2))
fig, axes = plt.subplots(2, len(ts_show), figsize=(13, 4.6))
viz.plot_chain(list(zoo.noised_at(roll, lin, ts_show, eps_pts)), ts_show, axes=axes[0], lim=3)
viz.plot_chain(list(zoo.noised_at(imgs, lin, ts_show, eps_img)), ts_show, axes=axes[1], nrow=4)
fig.suptitle("the forward process $q(x_t \\mid x_0)$ with DDPM's linear schedule ($t = n/T$)")
viz.save_figure(fig, "ch03_forward.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The posterior $q(x_{n-1} \mid x_n, x_0)$
#
# The reverse of one step is intractable without $x_0$, but **given** $x_0$ it is Gaussian. By Bayes and the
# Markov property, $q(x_{n-1}\mid x_n, x_0) \propto q(x_n \mid x_{n-1})\, q(x_{n-1}\mid x_0)$. As a function of $x_{n-1}$
# the log of the right side is
# $$-\tfrac12\Big[\tfrac{(x_n - \sqrt{1-\beta_n}\,x_{n-1})^2}{\beta_n} + \tfrac{(x_{n-1}-\sqrt{\bar\alpha_{n-1}}\,x_0)^2}{1-\bar\alpha_{n-1}}\Big]
# = -\tfrac12\Big[x_{n-1}^2\Big(\tfrac{1-\beta_n}{\beta_n} + \tfrac{1}{1-\bar\alpha_{n-1}}\Big) - 2x_{n-1}\Big(\tfrac{\sqrt{1-\beta_n}}{\beta_n}x_n + \tfrac{\sqrt{\bar\alpha_{n-1}}}{1-\bar\alpha_{n-1}}x_0\Big)\Big] + \text{const}.$$
# A quadratic in $x_{n-1}$ is a Gaussian: its precision is the coefficient of $x_{n-1}^2$,
# $$\frac{(1-\beta_n)(1-\bar\alpha_{n-1}) + \beta_n}{\beta_n(1-\bar\alpha_{n-1})} = \frac{1-\bar\alpha_n}{\beta_n(1-\bar\alpha_{n-1})}
# \quad\Rightarrow\quad \tilde\beta_n = \frac{1-\bar\alpha_{n-1}}{1-\bar\alpha_n}\,\beta_n,$$
# and its mean is variance × linear coefficient (DDPM Eq. 7):
# $$\tilde\mu_n(x_n, x_0) = \underbrace{\frac{\sqrt{\bar\alpha_{n-1}}\,\beta_n}{1-\bar\alpha_n}}_{c_{x_0}}\,x_0 + \underbrace{\frac{\sqrt{1-\beta_n}\,(1-\bar\alpha_{n-1})}{1-\bar\alpha_n}}_{c_{x_t}}\,x_n .$$
# Note $\tilde\beta_n \le \beta_n$, and $\tilde\beta_1 = 0$: given $x_0$, the first step back is certain.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
n = torch.arange(2, 1001)
ab, ab_prev, beta = lin.alpha_bars[n], lin.alpha_bars[n - 1], lin.betas[n - 1]
c_x0 = ab_prev.sqrt() * beta / (1 - ab)
c_xt = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
beta_tilde = beta * (1 - ab_prev) / (1 - ab)
lib = forward.posterior_coefs(lin, (n - 1).double() / 1000, n.double() / 1000)
print("Eq. 7 equals utils.forward.posterior_coefs:",
      all(torch.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip((c_x0, c_xt, beta_tilde), lib)))
print("beta_tilde <= beta at every step:", bool((beta_tilde <= beta).all()))

# %% [markdown] slideshow={"slide_type": "fragment"}
# And by simulation: with $x_0$ fixed, $(x_{n-1}, x_n)$ is jointly Gaussian, so regressing $x_{n-1}$ on $x_n$
# must give slope $c_{x_t}$, intercept $c_{x_0}x_0$ and residual variance $\tilde\beta_n$.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
n0, x0_val, N = 100, 0.8, 400_000
g = torch.Generator().manual_seed(2)
s_, t_ = torch.tensor((n0 - 1) / 1000, dtype=torch.float64), torch.tensor(n0 / 1000, dtype=torch.float64)
x_prev, _ = forward.q_sample(lin, torch.full((N, 1), x0_val, dtype=torch.float64), s_, generator=g)
x_n = forward.q_step(lin, x_prev, s_, t_, generator=g)
cov = torch.cov(torch.cat([x_prev, x_n], 1).T)
slope = cov[0, 1] / cov[1, 1]
intercept = x_prev.mean() - slope * x_n.mean()
residual = cov[0, 0] - slope * cov[0, 1]
c0, ct, var = forward.posterior_coefs(lin, s_, t_)
print("slope = c_xt:", bool(abs(slope - ct) < 0.01), "| intercept = c_x0 x_0:", bool(abs(intercept - c0 * x0_val) < 0.01),
      "| residual variance = beta_tilde:", bool(abs(residual / var - 1) < 0.02))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The bound and its decomposition
#
# The reverse model is a Markov chain $p_\theta(x_{0:T}) = p(x_T)\prod_{n=1}^T p_\theta(x_{n-1}\mid x_n)$ with
# $p(x_T) = \mathcal N(0, I)$ and Gaussian steps. Its likelihood $p_\theta(x_0) = \int p_\theta(x_{0:T})\,dx_{1:T}$ is an
# integral over all paths; weight it by the forward chain and apply Jensen's inequality to the concave log:
# $$-\log p_\theta(x_0) = -\log \mathbb E_{q(x_{1:T}\mid x_0)}\Big[\frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\Big]
# \le \mathbb E_q\Big[-\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\Big] =: L .\qquad\text{(Eq. 3)}$$
# **Rewriting $L$** (Appendix A). Expand both chains:
# $L = \mathbb E_q\big[-\log p(x_T) - \sum_{n\ge1}\log \tfrac{p_\theta(x_{n-1}\mid x_n)}{q(x_n\mid x_{n-1})}\big]$.
# For $n\ge2$, Markov and Bayes give $q(x_n\mid x_{n-1}) = q(x_n\mid x_{n-1}, x_0) = \tfrac{q(x_{n-1}\mid x_n, x_0)\,q(x_n\mid x_0)}{q(x_{n-1}\mid x_0)}$.
# The ratios $q(x_n\mid x_0)/q(x_{n-1}\mid x_0)$ telescope to $q(x_T\mid x_0)/q(x_1\mid x_0)$, and the leftover $q(x_1\mid x_0)$ cancels
# the denominator of the $n = 1$ term, so
# $$L = \mathbb E_q\Big[-\log\frac{p(x_T)}{q(x_T\mid x_0)} - \sum_{n=2}^T \log\frac{p_\theta(x_{n-1}\mid x_n)}{q(x_{n-1}\mid x_n, x_0)} - \log p_\theta(x_0\mid x_1)\Big]$$
# and each expectation of a log-ratio is a KL divergence (Eq. 5):
# $$L = \underbrace{D_\text{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T} + \sum_{n=2}^T \underbrace{\mathbb E_q\, D_\text{KL}\big(q(x_{n-1}\mid x_n,x_0)\,\|\,p_\theta(x_{n-1}\mid x_n)\big)}_{L_{n-1}} \underbrace{- \mathbb E_q \log p_\theta(x_0\mid x_1)}_{L_0}.$$
# All KLs are between Gaussians, so they are closed forms: only one $x_n$ per term needs to be sampled.
#
# **Check** on 1-D data $x_0 \sim \mathcal N(0.5, 0.2^2)$, $T = 20$, and a deliberately imperfect reverse model
# (mean = the posterior mean with $\hat x_0 = 0.9\,\mathbb E[x_0\mid x_n]$, variance $\beta_n$): the average log-ratio
# along whole simulated trajectories must equal the decomposition.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
T20 = zoo.make_schedule("linear", 20)
m, s2 = 0.5, 0.2**2
betas20, ab20 = T20.betas, T20.alpha_bars
F64 = dict(dtype=torch.float64)


def coefs(n):  # posterior coefficients and variance of q(x_{n-1} | x_n, x_0), Eq. 7
    return forward.posterior_coefs(T20, torch.tensor((n - 1) / 20, **F64), torch.tensor(n / 20, **F64))


def mu_model(x_n, n):  # an imperfect reverse mean (n = 1: c_x0 = 1, c_xt = 0, the decoder mean)
    a, sig2 = ab20[n].sqrt(), 1 - ab20[n]
    x0_hat = 0.9 * (m + a * s2 / (a**2 * s2 + sig2) * (x_n - a * m))
    c_x0_, c_xt_, _ = coefs(n)
    return c_x0_ * x0_hat + c_xt_ * x_n


N, g = 200_000, torch.Generator().manual_seed(3)
x0 = m + s2**0.5 * torch.randn(N, generator=g, **F64)
# (A) one log-ratio per simulated trajectory x_0 -> x_1 -> ... -> x_20
xs = [x0]
for n in range(1, 21):
    xs.append((1 - betas20[n - 1]).sqrt() * xs[-1] + betas20[n - 1].sqrt() * torch.randn(N, generator=g, **F64))
log_q = sum(log_normal(xs[n], (1 - betas20[n - 1]).sqrt() * xs[n - 1], betas20[n - 1]) for n in range(1, 21))
log_p = log_normal(xs[20], 0.0, torch.tensor(1.0, **F64)) + sum(
    log_normal(xs[n - 1], mu_model(xs[n], n), betas20[n - 1]) for n in range(1, 21))
trajectory = log_q - log_p
# (B) L_T + sum_n L_{n-1} + L_0, every KL in closed form, one fresh x_n per term
decomposed = kl_normal(ab20[20].sqrt() * x0, 1 - ab20[20], torch.tensor(0.0, **F64), torch.tensor(1.0, **F64))
for n in range(1, 21):
    x_n = ab20[n].sqrt() * x0 + (1 - ab20[n]).sqrt() * torch.randn(N, generator=g, **F64)
    c_x0_, c_xt_, var_q = coefs(n)
    if n >= 2:
        decomposed = decomposed + kl_normal(c_x0_ * x0 + c_xt_ * x_n, var_q, mu_model(x_n, n), betas20[n - 1])
    else:
        decomposed = decomposed - log_normal(x0, mu_model(x_n, 1), betas20[0])
se = ((trajectory.var() + decomposed.var()) / N).sqrt()
print("trajectory average = L_T + sum L_{n-1} + L_0 (within 4 standard errors):",
      bool((trajectory.mean() - decomposed.mean()).abs() < 4 * se))
print("the bound is above the data's entropy 0.5 log(2 pi e s^2):", bool(decomposed.mean() > 0.5 * math.log(2 * math.pi * math.e * s2)))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. From a KL to a squared error, and from the mean to the noise
#
# **The KL between two Gaussians** (chapter 00) with covariances $\tilde\beta_n I$ and $\sigma_n^2 I$ in $D$ dimensions:
# $$D_\text{KL}\big(\mathcal N(\tilde\mu, \tilde\beta I)\,\|\,\mathcal N(\mu_\theta, \sigma^2 I)\big) = \frac{\|\tilde\mu - \mu_\theta\|^2}{2\sigma^2} + \underbrace{\frac D2\Big[\log\frac{\sigma^2}{\tilde\beta} + \frac{\tilde\beta}{\sigma^2} - 1\Big]}_{C_n,\ \text{independent of }\theta} .$$
# With the variance fixed (DDPM uses $\sigma_n^2 = \beta_n$ or $\tilde\beta_n$; then $C_n = 0$ for $\tilde\beta_n$), training
# $L_{n-1}$ is **mean matching** (Eq. 8): $L_{n-1} = \mathbb E_q \frac{1}{2\sigma_n^2}\|\tilde\mu_n(x_n, x_0) - \mu_\theta(x_n, n)\|^2 + C_n$.
#
# **The ε-parameterisation.** Substitute $x_0 = (x_n - \sqrt{1-\bar\alpha_n}\,\varepsilon)/\sqrt{\bar\alpha_n}$ into Eq. 7. Using $\bar\alpha_n = (1-\beta_n)\bar\alpha_{n-1}$:
# $c_{x_0}/\sqrt{\bar\alpha_n} = \frac{\beta_n}{\sqrt{1-\beta_n}(1-\bar\alpha_n)}$ and $c_{x_0}/\sqrt{\bar\alpha_n} + c_{x_t} = \frac{\beta_n + (1-\beta_n)(1-\bar\alpha_{n-1})}{\sqrt{1-\beta_n}(1-\bar\alpha_n)} = \frac{1}{\sqrt{1-\beta_n}}$, so
# $$\tilde\mu_n = \frac{1}{\sqrt{1-\beta_n}}\Big(x_n - \frac{\beta_n}{\sqrt{1-\bar\alpha_n}}\,\varepsilon\Big) \qquad\text{(Eq. 10)}.$$
# $x_n$ is the network's input, so only $\varepsilon$ is unknown: let the network predict it, $\mu_\theta = \frac{1}{\sqrt{1-\beta_n}}\big(x_n - \frac{\beta_n}{\sqrt{1-\bar\alpha_n}}\varepsilon_\theta(x_n, n)\big)$ (Eq. 11). Then
# $$L_{n-1} - C_n = \mathbb E\Big[\underbrace{\frac{\beta_n^2}{2\sigma_n^2(1-\beta_n)(1-\bar\alpha_n)}}_{w_n}\ \big\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_n}x_0 + \sqrt{1-\bar\alpha_n}\,\varepsilon,\ n)\big\|^2\Big] \qquad\text{(Eq. 12)}.$$
# For $\sigma_n^2 = \tilde\beta_n$ the weight is $w_n = \frac12\big(\frac{\text{SNR}_{n-1}}{\text{SNR}_n} - 1\big)$ with $\text{SNR} = \bar\alpha/(1-\bar\alpha)$.
# **$L_\text{simple}$** (Eq. 14) drops $w_n$ and $C_n$: $L_\text{simple} = \mathbb E_{n, x_0, \varepsilon}\|\varepsilon - \varepsilon_\theta(x_n, n)\|^2$ with $n \sim U\{1..T\}$.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(4)
x0 = data.test_x[:16].double()
n = torch.randint(2, 1001, (16,), generator=g)
t = n.double() / 1000
eps = torch.randn(x0.shape, generator=g, **F64)
x_n = append_dims(lin.alpha(t), x0) * x0 + append_dims(lin.sigma(t), x0) * eps
beta_n, ab_n = append_dims(lin.betas[n - 1], x0), append_dims(lin.alpha_bars[n], x0)
mean_q, var_q = forward.posterior(lin, x_n, x0, (n - 1).double() / 1000, t)
print("Eq. 10: mu_tilde = (x_n - beta/sqrt(1 - abar) eps)/sqrt(1 - beta):",
      torch.allclose(mean_q, (x_n - beta_n / (1 - ab_n).sqrt() * eps) / (1 - beta_n).sqrt(), atol=1e-9))
eps_hat = eps + 0.3 * torch.randn(x0.shape, generator=g, **F64)
mu_theta = (x_n - beta_n / (1 - ab_n).sqrt() * eps_hat) / (1 - beta_n).sqrt()
ok = []
for kind, var_p in (("posterior", append_dims(var_q, x0)), ("beta", beta_n)):
    kl = sum_features(kl_normal(mean_q, append_dims(var_q, x0), mu_theta, var_p.expand_as(x0)))
    const = sum_features(kl_normal(mean_q, append_dims(var_q, x0), mean_q, var_p.expand_as(x0)))
    w = L.elbo_weights(lin, kind)[n - 1]
    ok.append(torch.allclose(kl - const, w * sum_features((eps - eps_hat) ** 2), rtol=1e-8))
print("Eq. 12: KL - C_n = w_n ||eps - eps_hat||^2 for sigma^2 = beta_tilde and sigma^2 = beta:", all(ok))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What $L_\text{simple}$ drops.** The true bound weighs step $n$ by $w_n$; $L_\text{simple}$ weighs every step by 1.
# Normalised to the same mean (left), the bound puts far more weight on the first, almost noise-free steps
# (at $n = 1$ the term is the decoder, plotted with its Gaussian core). Written for $\hat x_0$ instead of ε (right,
# $\|\varepsilon - \hat\varepsilon\|^2 = \text{SNR}_n\|x_0 - \hat x_0\|^2$), the bound's weight is $\frac12(\text{SNR}_{n-1} - \text{SNR}_n)$: it telescopes, which is why
# an $\hat x_0$ that is off by $\delta$ at every step costs exactly $\frac12(\text{SNR}_1 - \text{SNR}_T)\|\delta\|^2$ (a test of `utils.eval.likelihood` checks this).

# %% slideshow={"slide_type": "-"}
cos = schedules.cosine(1000)
steps_n = np.arange(1, 1001)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name, sch, colour in (("linear", lin, "tab:blue"), ("cosine", cos, "tab:orange")):
    for kind, style in (("posterior", "-"), ("beta", "--")):
        w = L.elbo_weights(sch, kind).numpy()
        label = f"{name}, " + ("$\\sigma^2 = \\tilde\\beta$" if kind == "posterior" else "$\\sigma^2 = \\beta$")
        axes[0].plot(steps_n, w / w.mean(), style, color=colour, label=label)
    snr = (sch.alpha_bars / (1 - sch.alpha_bars)).numpy()
    axes[1].plot(steps_n[1:], 0.5 * (snr[1:-1] - snr[2:]), color=colour, label=name)
axes[0].axhline(1.0, color="k", lw=1, label="$L_\\mathrm{simple}$ (uniform)")
axes[0].set(yscale="log", xlabel="step n", ylabel="weight / mean weight", title="weight of $\\|\\varepsilon - \\hat\\varepsilon\\|^2$ in the bound")
axes[1].set(xscale="log", yscale="log", xlabel="step n", ylabel="$\\frac{1}{2}(\\mathrm{SNR}_{n-1} - \\mathrm{SNR}_n)$",
            title="the same bound in $x_0$-space: weight of $\\|x_0 - \\hat x_0\\|^2$")
axes[0].legend(fontsize=8)
axes[1].legend(fontsize=8)
viz.save_figure(fig, "ch03_elbo_weights.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for name, sch in (("linear", lin), ("cosine", cos)):
    w = L.elbo_weights(sch, "posterior")
    print(f"{name}: the first 10% of the steps carry {w[:100].sum() / w.sum():.0%} of the bound's weight, "
          f"the last 1% carry {w[-10:].sum() / w.sum():.0%} (L_simple: 10% and 1%)")

# %% [markdown] slideshow={"slide_type": "fragment"}
# For the linear schedule the bound's weight sits at the start of the chain. The cosine schedule adds a second
# pile at the very end: there $\beta_n$ is clipped at 0.999, the SNR falls a thousandfold in one step, and since
# $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$ divides by a tiny $\alpha_t$, a small error in ε is a huge error in $x_0$. The same
# division is why sampling clips $\hat x_0$ to the data range (section 7).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Four views of one network: ε, $\hat x_0$, v and the score
#
# From $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ (here $\alpha_t = \sqrt{\bar\alpha_t}$, $\sigma_t = \sqrt{1-\bar\alpha_t}$), a prediction of any one of these
# determines the others: $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$; $v = \alpha_t\varepsilon - \sigma_t x_0$ gives $\hat x_0 = \alpha_t x_t - \sigma_t\hat v$.
# The minimiser of the ε-loss is $\hat\varepsilon(x_t) = \mathbb E[\varepsilon\mid x_t]$, hence $\hat x_0 = \mathbb E[x_0\mid x_t]$.
#
# **Tweedie's formula** links this to the score of chapter 02. Differentiate $p_t(x_t) = \int q(x_0)\,\mathcal N(x_t; \alpha_t x_0, \sigma_t^2 I)\,dx_0$:
# $\nabla p_t = \int q(x_0)\,\mathcal N(\cdot)\,\frac{\alpha_t x_0 - x_t}{\sigma_t^2}\,dx_0$, so $\nabla\log p_t(x_t) = \frac{\alpha_t\,\mathbb E[x_0\mid x_t] - x_t}{\sigma_t^2} = -\frac{\mathbb E[\varepsilon\mid x_t]}{\sigma_t}$.
# The ε-network is a score network up to the factor $-1/\sigma_t$ (DDPM Section 3.2: $L_\text{simple}$ is denoising score
# matching over many noise levels). `utils.denoiser.Denoiser` implements all four views; check them on the
# analytic Gaussian mixture, whose posterior mean and score are exact.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mix = analytic_mixture()
den_x0 = mixture_denoiser(mix, cos)                                   # exact E[x_0 | x_t]
den_eps = Denoiser(lambda x, t: den_x0.eps(x, t), cos, predicts="eps")
den_v = Denoiser(lambda x, t: den_x0.v(x, t), cos, predicts="v")
g = torch.Generator().manual_seed(5)
t = torch.full((500,), 0.4)
x_t, _ = forward.q_sample(cos, mix.sample(500, generator=g), t, generator=g)
score = mix.score_t(x_t, cos, 0.4)
tweedie = (x_t + append_dims(cos.sigma(t), x_t) ** 2 * score) / append_dims(cos.alpha(t), x_t)
print("Tweedie: E[x_0 | x_t] = (x_t + sigma^2 grad log p_t) / alpha:", torch.allclose(den_x0.x0(x_t, t), tweedie, atol=1e-4))
print("eps-, x0- and v-networks give the same x0_hat and score:",
      all(torch.allclose(d.x0(x_t, t), den_x0.x0(x_t, t), atol=1e-4) and torch.allclose(d.score(x_t, t), score, atol=1e-3)
          for d in (den_eps, den_v, den_x0)))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The two algorithms
#
# | Algorithm 1 — training | Algorithm 2 — sampling |
# |---|---|
# | repeat: $x_0 \sim q(x_0)$, $n \sim U\{1..T\}$, $\varepsilon\sim\mathcal N(0, I)$ | $x_T \sim \mathcal N(0, I)$ |
# | gradient step on $\nabla_\theta\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_n}x_0 + \sqrt{1-\bar\alpha_n}\varepsilon, n)\|^2$ | for $n = T..1$: $z\sim\mathcal N(0,I)$ if $n>1$ else $z=0$ |
# | until converged | $x_{n-1} = \frac{1}{\sqrt{1-\beta_n}}\big(x_n - \frac{\beta_n}{\sqrt{1-\bar\alpha_n}}\varepsilon_\theta(x_n, n)\big) + \sigma_n z$ |
#
# Both in a few lines, and checked against the library with the same random draws:

# %% slideshow={"slide_type": "-"}
def ddpm_loss(eps_net, x0, alpha_bars, generator):
    """Algorithm 1, the loss of one batch: n ~ U{1..T}, eps ~ N(0, I), ||eps - eps_theta(x_n, n/T)||^2."""
    T = len(alpha_bars) - 1
    n = torch.randint(1, T + 1, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    ab = append_dims(alpha_bars[n].float(), x0)
    x_n = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return (eps - eps_net(x_n, n / T)).pow(2).mean()


torch.manual_seed(0)
untrained = MLP(dim=2, hidden=64, depth=2)
batch = toy("swiss_roll", 256, torch.Generator().manual_seed(6))
ours = ddpm_loss(untrained, batch, lin.alpha_bars, torch.Generator().manual_seed(7))
library = diffusion_loss(untrained, lin, batch, T=1000, generator=torch.Generator().manual_seed(7))
torch.testing.assert_close(ours, library)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("Algorithm 1 written inline = utils.training.diffusion_loss (same draws): True")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Training on 2-D points.** `utils.training.zoo.toy_ddpm` runs Algorithm 1 through `utils.training.cached_train` (AdamW,
# EMA of the weights, a progress bar), on the Swiss roll of chapter 01, with DDPM's schedule ($T = 1000$).
# It trains once and is loaded afterwards.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
toy_den, toy_run = zoo.toy_ddpm("swiss_roll")
print(f"{'loaded' if toy_run.loaded else 'trained'}: {len(toy_run.losses)} steps, {toy_run.seconds:.0f} s of training")
viz.plot_loss(toy_run.losses, title="Swiss roll: L_simple")
plt.show()

# %% slideshow={"slide_type": "subslide"}
@torch.no_grad()
def ddpm_sample(eps_net, x_T, betas, generator, variance="posterior"):
    """Algorithm 2: x_{n-1} = (x_n - beta_n/sqrt(1-abar_n) eps_theta)/sqrt(1-beta_n) + sigma_n z, n = T..1."""
    T = len(betas)
    alpha_bars = torch.cumprod(1 - betas, 0)
    x = x_T
    for n in range(T, 0, -1):
        beta, ab = betas[n - 1], alpha_bars[n - 1]
        eps = eps_net(x, torch.full((x.shape[0],), n / T))
        x = (x - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()          # the mean mu_theta(x_n, n)
        if n > 1:
            var = beta * (1 - alpha_bars[n - 2]) / (1 - ab) if variance == "posterior" else beta
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator)
    return x


grid = samplers.time_grid(1000, T=1000)                                   # t = 1, 0.999, ..., 0
x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(8))
ours = ddpm_sample(toy_den.net, x_T, toy_den.schedule.betas, torch.Generator().manual_seed(9))
library = samplers.sample_ddpm(toy_den, x_T, grid, generator=torch.Generator().manual_seed(9))
torch.testing.assert_close(ours, library, rtol=1e-3, atol=1e-3)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("Algorithm 2 written inline = utils.samplers.sample_ddpm (same draws): True")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The two variance choices.** DDPM Section 3.2: $\sigma_n^2 = \beta_n$ is optimal for $x_0 \sim \mathcal N(0, I)$,
# $\sigma_n^2 = \tilde\beta_n$ for $x_0$ a single point — the two extremes of the reverse step's entropy (chapter 01) —
# and "both had similar results" for samples. `sample_ddpm` uses $\tilde\beta_n$; the inline sampler does both.
# Quality here is the sliced Wasserstein distance to fresh data, next to the data-vs-data floor.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
n_pts = by_profile(smoke=500, cpu=2000, gpu=5000)
x_T = torch.randn(n_pts, 2, generator=torch.Generator().manual_seed(10))
toy_small = samplers.sample_ddpm(toy_den, x_T, grid, generator=torch.Generator().manual_seed(11))
toy_large = ddpm_sample(toy_den.net, x_T, toy_den.schedule.betas, torch.Generator().manual_seed(11), variance="beta")
fresh = toy("swiss_roll", n_pts, torch.Generator().manual_seed(12))
floor = metrics.sw_floor(lambda k, g_: toy("swiss_roll", k, g_), n_pts)
sw_small, sw_large = metrics.sliced_wasserstein(toy_small, fresh), metrics.sliced_wasserstein(toy_large, fresh)
print(f"sliced Wasserstein to fresh data: sigma^2 = beta_tilde {sw_small:.3f}, sigma^2 = beta {sw_large:.3f}, "
      f"data-vs-data floor {floor['mean']:.3f} ± {floor['std']:.3f}")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, pts, title in zip(axes, (fresh, toy_small, toy_large), ("data", "DDPM, $\\sigma^2 = \\tilde\\beta$", "DDPM, $\\sigma^2 = \\beta$")):
    viz.plot_points(pts, ax=ax, lim=2.5, title=title)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The reverse chain.** Each panel is the whole cloud at one time; the last panel shows paths of single points.
# Structure appears late: for most of the chain the cloud is still a blurred blob.

# %% slideshow={"slide_type": "-"}
xs_toy, _ = zoo.reverse_chain(toy_den, x_T[:1000], grid, generator=torch.Generator().manual_seed(13))
show = [1.0, 0.6, 0.4, 0.25, 0.1, 0.0]
idx = [round((1 - s) * 1000) for s in show]                        # xs[i] is x at t = 1 - i/T
fig, axes = plt.subplots(1, len(show) + 1, figsize=(15, 2.6))
viz.plot_chain([xs_toy[i] for i in idx], show, axes=axes[:-1], lim=2.5)
viz.plot_trajectories(xs_toy[::10, :150], ax=axes[-1], lim=2.5, title="paths")
axes[-1].set_xticks([]), axes[-1].set_yticks([])
fig.suptitle("DDPM's reverse chain on the Swiss roll")
viz.save_figure(fig, "ch03_reverse_chain_2d.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. DDPM on images
#
# Now the course UNet (`utils.nets.UNet`: residual blocks with a time embedding, two resolutions) on the
# profile's images, with DDPM's linear schedule and $L_\text{simple}$. `utils.training.zoo.digits_ddpm` is the model
# chapters 04–06 reuse. Its denoiser clips $\hat x_0$ to $[-1, 1]$ while sampling, as DDPM's code does.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
lin_den, lin_run = zoo.digits_ddpm(schedule="linear")
print(f"{'loaded' if lin_run.loaded else 'trained'}: {len(lin_run.losses)} steps, {lin_run.seconds:.0f} s of training")
viz.plot_loss(lin_run.losses, title="digits, linear schedule: L_simple")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Samples and their quality.** The score is the Fréchet distance in the feature space of a small
# classifier, as a ratio to the real-vs-real floor (defined in chapter 00, section 6, and `utils.eval.metrics`; 1.0 = indistinguishable). Samples use
# `SAMPLE_STEPS` ancestral steps respaced over the 1000 training steps (section 11 explains respacing).
# The ratio of one set of 1000 samples is noisy for models this small (two sets of the same model can differ
# by ±1), so every model gets two independent sample sets: both values are printed, and their mean is used.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def fd_of(den, n=N_SAMPLES, steps=SAMPLE_STEPS, seeds=(0, 1)):
    """Samples of the first seed, and the FD ratio of each seed's set of n samples."""
    sets = [zoo.sample_images(den, n, steps=steps, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return sets[0], [metrics.fd_ratio(x, data, generator=0)["ratio"] for x in sets]


def fmt(ratios):
    return f"{np.mean(ratios):.2f} (" + ", ".join(f"{r:.2f}" for r in ratios) + ")"


start = time.perf_counter()
lin_samples, lin_fds = fd_of(lin_den)
lin_fd = float(np.mean(lin_fds))
print(f"linear schedule, L_simple: FD ratio {fmt(lin_fds)} ({N_SAMPLES} samples per set, {SAMPLE_STEPS} steps, "
      f"{time.perf_counter() - start:.0f} s)")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
viz.show_images(data.test_x[:48], nrow=16, ax=axes[0], title="real (held out)")
viz.show_images(lin_samples[:48], nrow=16, ax=axes[1], title="DDPM samples (linear)")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Progressive generation** (the idea of DDPM's Figure 6): along one reverse chain, the network's prediction
# $\hat x_0$ shows what the sample *will* be long before $x_t$ does — coarse shape first, details last.

# %% slideshow={"slide_type": "-"}
chain_grid = samplers.time_grid(by_profile(smoke=50, cpu=1000, gpu=1000), T=1000)
x_T_img = torch.randn(4, *data.train_x.shape[1:], generator=torch.Generator().manual_seed(14))
chain_x, chain_x0 = zoo.reverse_chain(lin_den, x_T_img.to(device), chain_grid.to(device),
                                      generator=torch.Generator().manual_seed(15))
show = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
idx = [int(torch.argmin((chain_grid - s).abs())) for s in show]          # chain_x[i] is x at chain_grid[i]
rows = [torch.stack([states[min(i, len(states) - 1), k] for i in idx]) for k in range(4) for states in (chain_x, chain_x0)]
fig, ax = plt.subplots(figsize=(9, 7))
viz.show_images(torch.cat(rows), nrow=len(show), ax=ax)
side = data.train_x.shape[-1] + 1
for j, s in enumerate(show):
    ax.text(1 + side * (j + 0.5), -1, f"t = {s:.1f}", ha="center", va="bottom", fontsize=9)
for r in range(8):
    ax.text(-1, 1 + side * (r + 0.5), "$x_t$" if r % 2 == 0 else "$\\hat x_0$", ha="right", va="center", fontsize=10)
ax.set_title("the reverse chain ($x_t$) and the network's prediction $\\hat x_0$ along it, four samples", pad=18)
viz.save_figure(fig, "ch03_progressive.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Widget: scrub through the chain.** Move the slider to any step of the chain; the static figure above shows
# the same chain at eleven times.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def show_step(i=0):
    fig, axes = plt.subplots(1, 2, figsize=(6, 1.9))
    viz.show_images(chain_x[i], nrow=4, ax=axes[0], title=f"$x_t$, t = {chain_grid[i].item():.3f}")
    viz.show_images(chain_x0[min(i, len(chain_x0) - 1)], nrow=4, ax=axes[1], title="$\\hat x_0$")
    plt.show()


widgets.interact(show_step, i=widgets.IntSlider(min=0, max=len(chain_grid) - 1, step=1, value=len(chain_grid) // 2,
                                                description="step"));

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Likelihood: the bound in bits per dimension
#
# **Discretisation.** Digits are integers $k \in \{0..16\}$ (17 levels), stored as $x = k/8 - 1 \in [-1, 1]$; each value owns a bin
# of half-width $\delta = 1/16$ (for 8-bit images $\delta = 1/255$). The bound is made a bound on a *probability* by a
# **discretised Gaussian decoder** (DDPM Eq. 13): $p_\theta(x_0\mid x_1) = \prod_i \int_{\delta_-(x_0^i)}^{\delta_+(x_0^i)} \mathcal N(x; \mu_\theta^i(x_1, 1), \sigma_1^2)\,dx$,
# the bin $[x - \delta, x + \delta]$ with the edges $-1$ and $1$ stretched to $\mp\infty$. Then $L / (D \ln 2)$ is an upper bound on the
# model's **bits/dim** for discrete data, directly comparable to
# - **uniform** over the levels: $\log_2 17 = 4.09$ bits/dim (8 for 8-bit images);
# - **independent pixels**: each pixel its own categorical, fitted on the training split — the best model
#   that ignores how pixels depend on one another.
#
# **Dequantisation** is the alternative for continuous densities (chapter 05's ODE likelihood): add $u \sim U(-\delta, \delta)$ to
# every pixel; then $-\log P(k) \le \mathbb E_u[-\log p(x+u)] - D\log(2\delta)$ (`likelihood.dequantise`, `dequantised_bits_per_dim`).
#
# `utils.eval.likelihood.variational_bound` evaluates $L_T$ and $L_0$ exactly and the sum $\sum_{n\ge2} L_{n-1}$ either over all $T$
# steps or, to save time, with one random step in each of `N_TERMS` equal strata (unbiased). Each term uses one
# fresh $x_n \sim q(x_n\mid x_0)$.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
grid_levels = L.from_levels(torch.arange(LEVELS), LEVELS).double()
p_bins = L.discretised_gaussian_log_prob(grid_levels, torch.full_like(grid_levels, 0.3), torch.tensor(math.log(0.05)),
                                         LEVELS).exp()
print("the decoder's bin probabilities sum to one:", bool(torch.isclose(p_bins.sum(), torch.tensor(1.0, **F64))))
uniform_bpd = L.uniform_bits_per_dim(LEVELS)
indep_bpd = L.independent_pixel_bits_per_dim(data.train_x, test_x, LEVELS)
print(f"baselines: uniform {uniform_bpd:.2f} bits/dim")

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
def bound_of(predict, sch, seed=0):
    return L.variational_bound(predict, sch, test_x.to(device), levels=LEVELS, n_terms=N_TERMS,
                               generator=torch.Generator().manual_seed(seed))


start = time.perf_counter()
bounds = {"linear, L_simple, sigma^2 = beta_tilde": bound_of(L.fixed_variance(lin_den, "posterior"), lin_den.schedule),
          "linear, L_simple, sigma^2 = beta": bound_of(L.fixed_variance(lin_den, "beta"), lin_den.schedule)}
print(f"independent pixels: {indep_bpd:.2f} bits/dim, uniform: {uniform_bpd:.2f} bits/dim")
for name, b in bounds.items():
    print(f"{name:40s} total {b.total_bpd:.2f} = L_T {b.prior_bpd:.4f} + sum L_n-1 {b.diffusion_bpd:.2f} + L_0 {b.decoder_bpd:.2f}")
print(f"({time.perf_counter() - start:.0f} s)")

# %% slideshow={"slide_type": "-"}
fig, ax = plt.subplots(figsize=(7, 3.6))
for (name, b), style in zip(bounds.items(), ("o-", "s--")):
    ax.plot(b.ns[1:], b.terms_bpd[1:] * 1000, style, ms=3, label=name)   # per step, scaled by T
ax.set(xscale="log", yscale="log", xlabel="step n", ylabel="T · L_{n-1} (bits/dim)",
       title="where the bound's bits are spent (digits, linear schedule)")
ax.legend(fontsize=8)
viz.save_figure(fig, "ch03_bound_terms.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Where the bits go.** The cost per step falls by more than two orders of magnitude over the first hundred steps
# (log–log axes), so the first few steps, where the noise is far smaller than the gap between two grey levels,
# carry a large share of the bound. There the ideal denoiser is trivial — round $x_t/\alpha_t$ to the nearest
# of the 17 levels — but in ε-terms that is a saw-tooth of amplitude up to $\delta/\sigma_t$, which a smooth network trained
# for three minutes with $L_\text{simple}$ (which weighs these steps like any other) has not learned. Test the diagnosis:
# keep the network, but wherever $\sigma_t/\alpha_t < \delta/2$ replace its $\hat x_0$ by the rounded $x_t/\alpha_t$. This is still a
# legitimate reverse process (it looks only at $x_t$), so its bound is a valid bound on its likelihood.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
class SnapToLevels(torch.nn.Module):
    """An ε-network that, where sigma_t / alpha_t < threshold, takes x0_hat = x_t / alpha_t rounded to the levels."""

    def __init__(self, net, schedule, threshold, levels):
        super().__init__()
        self.net, self.schedule, self.threshold, self.levels = net, schedule, threshold, levels

    def forward(self, x, t):
        a, s = append_dims(self.schedule.alpha(t), x), append_dims(self.schedule.sigma(t), x)
        x0_grid = L.from_levels(L.to_levels(x / a, self.levels), self.levels).to(x)
        snap = append_dims(self.schedule.sigma_ve(t) < self.threshold, x)
        return torch.where(snap, (x - a * x0_grid) / s, self.net(x, t))


snap_den = Denoiser(SnapToLevels(lin_den.net, lin_den.schedule, 0.5 / (LEVELS - 1), LEVELS), lin_den.schedule,
                    clip_x0=(-1.0, 1.0))
bounds["linear, L_simple, snapping below delta/2"] = bound_of(L.fixed_variance(snap_den), lin_den.schedule)
n_snapped = int((lin_den.schedule.sigma_ve(torch.arange(1, 1001) / 1000) < 0.5 / (LEVELS - 1)).sum())
print(f"snapping the first {n_snapped} steps: {bounds['linear, L_simple, snapping below delta/2'].total_bpd:.2f} bits/dim "
      f"(network alone {bounds['linear, L_simple, sigma^2 = beta_tilde'].total_bpd:.2f}, independent pixels {indep_bpd:.2f})")

# %% [markdown] slideshow={"slide_type": "fragment"}
# The printed lines compare the model with the two baselines, before and after snapping: most of what separates
# the network from a good likelihood is that it has not learned the data's 17 levels. (With 256 levels the bins,
# $\delta = 1/255$, are narrower than the smallest noise $\sigma_1 = 0.01$, so 8-bit images suffer much less from this.) The
# $\sigma^2 = \beta$ choice pays the constant $C_n$ at every step but can still win when the mean is poor, since a larger
# variance forgives mean errors.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. $L_\text{simple}$ or the true bound? (DDPM Table 2)
#
# Train the same UNet, same schedule, same number of steps, on the true bound's weights $w_n$ (for $\sigma^2 = \tilde\beta$,
# normalised to mean 1 so the learning rate means the same) instead of the uniform ones, and compare both ways.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
elbo_den, elbo_run = zoo.digits_ddpm(schedule="linear", weighting="elbo")
print(f"{'loaded' if elbo_run.loaded else 'trained'}: {len(elbo_run.losses)} steps, {elbo_run.seconds:.0f} s of training")
elbo_samples, elbo_fds = fd_of(elbo_den)
elbo_fd = float(np.mean(elbo_fds))
bounds["linear, true-bound weights, sigma^2 = beta_tilde"] = bound_of(L.fixed_variance(elbo_den, "posterior"), elbo_den.schedule)
print(f"{'objective':22s} {'FD ratio (two sets)':>22s} {'bits/dim':>9s}")
print(f"{'L_simple':22s} {fmt(lin_fds):>22s} {bounds['linear, L_simple, sigma^2 = beta_tilde'].total_bpd:9.2f}")
print(f"{'true bound (w_n)':22s} {fmt(elbo_fds):>22s} {bounds['linear, true-bound weights, sigma^2 = beta_tilde'].total_bpd:9.2f}")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
viz.show_images(lin_samples[:48], nrow=16, ax=axes[0], title="L_simple")
viz.show_images(elbo_samples[:48], nrow=16, ax=axes[1], title="true-bound weights")
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Samples.** The true-bound weights concentrate the training signal on the nearly clean steps, where an error
# costs many bits but barely changes how an image *looks*; the high-noise steps that decide the global shape get
# little weight. $L_\text{simple}$ does the opposite — a reweighted bound that values what the eye values — and
# the printed FD ratios show the same direction as DDPM's Table 2.
#
# **Bits/dim.** In the paper the true bound buys a slightly better likelihood (≤ 3.70 against ≤ 3.75 bits/dim). Compare the
# printed bits/dim of the two models: with three minutes of training the reweighted loss need not win even on its own
# objective, because its gradient is much noisier — a handful of steps with huge weights dominate each batch.
# Nichol & Dhariwal (2021, Section 3.3) met the same problem optimising the bound directly and needed importance
# sampling of the steps to train it at all.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Improved DDPM: the cosine schedule
#
# Nichol & Dhariwal (2021, Section 3.2) observed that the linear schedule destroys information too fast for
# small images: the end of the forward chain is almost pure noise and contributes little. Their cosine
# schedule (Eq. 17) sets $\bar\alpha_n = f(n)/f(0)$ with $f(n) = \cos^2\big(\frac{n/T + s}{1+s}\cdot\frac\pi2\big)$, $s = 0.008$, and clips
# $\beta_n \le 0.999$. Its log-SNR falls almost linearly in the middle instead of plunging.

# %% slideshow={"slide_type": "-"}
tt = torch.linspace(0, 1, 1001)[1:]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for name, sch in (("linear", lin), ("cosine", cos)):
    axes[0].plot(tt, sch.alpha_bar(tt), label=name)
    axes[1].plot(tt, 2 * sch.lam(tt), label=name)
axes[0].set(xlabel="t = n / T", ylabel="$\\bar\\alpha_t$", title="signal kept")
axes[1].set(xlabel="t = n / T", ylabel="log SNR = $2\\lambda_t$", title="log signal-to-noise ratio")
axes[0].legend()
viz.save_figure(fig, "ch03_schedules.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for name, sch in (("linear", lin), ("cosine", cos)):
    frac = (sch.alpha_bars[1:] < 0.01).double().mean().item()
    print(f"{name}: {frac:.0%} of the steps have abar < 0.01 (less than 1% of the signal variance left)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Schedule explorer.** The same digits noised with one fixed ε under both schedules (static figure); the widget
# lets you pick the times and the number of steps $T$ (the linear schedule is rescaled by $1000/T$).

# %% slideshow={"slide_type": "-"}
ts_explore = [0.1, 0.3, 0.5, 0.7, 0.9]
fig, axes = plt.subplots(2, len(ts_explore), figsize=(12, 3.2))
for row, (name, sch) in enumerate((("linear", lin), ("cosine", cos))):
    viz.plot_chain(list(zoo.noised_at(imgs, sch, ts_explore, eps_img)), ts_explore, axes=axes[row], nrow=4)
    axes[row, 0].text(-3, 6, name, ha="right", va="center", fontsize=10)
fig.suptitle("the same ε, two schedules")
viz.save_figure(fig, "ch03_schedule_images.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def explore(t=0.5, T=1000):
    fig, axes = plt.subplots(1, 2, figsize=(7, 2))
    for ax, name in zip(axes, zoo.SCHEDULES):
        sch = zoo.make_schedule(name, T)
        viz.show_images(zoo.noised_at(imgs, sch, [t], eps_img)[0], nrow=4, ax=ax,
                        title=f"{name}: abar = {sch.alpha_bar(torch.tensor(t)).item():.3f}")
    plt.show()


widgets.interact(explore, t=widgets.FloatSlider(min=0.0, max=1.0, step=0.02, value=0.5),
                 T=widgets.Dropdown(options=[50, 100, 1000, 4000], value=1000));

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Equal training, different schedule.** The same UNet and training steps as the linear model of section 7.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
cos_den, cos_run = zoo.digits_ddpm(schedule="cosine")
print(f"{'loaded' if cos_run.loaded else 'trained'}: {len(cos_run.losses)} steps, {cos_run.seconds:.0f} s of training")
cos_samples, cos_fds = fd_of(cos_den)
cos_fd = float(np.mean(cos_fds))
bounds["cosine, L_simple, sigma^2 = beta_tilde"] = bound_of(L.fixed_variance(cos_den, "posterior"), cos_den.schedule)
print(f"FD ratio: linear {fmt(lin_fds)}, cosine {fmt(cos_fds)}   (the course's target for its model: <= 2.0)")
print(f"bits/dim: linear {bounds['linear, L_simple, sigma^2 = beta_tilde'].total_bpd:.2f}, "
      f"cosine {bounds['cosine, L_simple, sigma^2 = beta_tilde'].total_bpd:.2f}")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
viz.show_images(lin_samples[:48], nrow=16, ax=axes[0], title=f"linear (FD ratio {lin_fd:.2f})")
viz.show_images(cos_samples[:48], nrow=16, ax=axes[1], title=f"cosine (FD ratio {cos_fd:.2f})")
viz.save_figure(fig, "ch03_samples.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# **What the printed ratios say.** Compare the two sample sets of each model first: they show how far the ratio moves
# between two sets of the *same* model. In this run that spread (up to about ±0.3) is much smaller than the gap between the
# schedules, so at this budget the **linear** schedule gives the better samples *and* the better bound (printed) — the
# opposite of Improved DDPM's finding on 64×64 images. The paper's argument is about images whose information survives
# to high noise; 8×8 digits have far less of it, and the linear schedule's wasted last third (printed in section 10)
# costs little. The next experiment looks at that waste directly.
#
# **Skipping the start of the chain** (Improved DDPM, Section 3.2 and Figure 4): with the linear schedule a model "does not get
# much worse when we skip up to 20% of the reverse diffusion process". Start the reverse chain at $t = 0.8$ from
# pure noise instead of at $t = 1$:

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
for name, den in (("linear", lin_den), ("cosine", cos_den)):
    x_start = torch.randn(N_SAMPLES // 2, *data.train_x.shape[1:], generator=torch.Generator().manual_seed(16))
    ts_skip = samplers.time_grid(SAMPLE_STEPS, t_max=0.8, T=1000)
    skipped = samplers.sample_ddpm(den, x_start.to(device), ts_skip.to(device), generator=torch.Generator().manual_seed(17)).cpu()
    _, (full,) = fd_of(den, n=N_SAMPLES // 2, seeds=(16,))
    print(f"{name}: FD ratio ({N_SAMPLES // 2} samples) from t = 1: {full:.2f}, "
          f"from t = 0.8: {metrics.fd_ratio(skipped, data, generator=0)['ratio']:.2f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. Learned variances, the hybrid loss, and fewer sampling steps
#
# $L_\text{simple}$ never sees $\Sigma_\theta$, so DDPM fixed it. Improved DDPM (Section 3.1) lets the network output one more
# number per pixel, $v$, and interpolates in the log domain between the two natural choices (Eq. 15):
# $\Sigma_\theta(x_n, n) = \exp\big(v\log\beta_n + (1-v)\log\tilde\beta_n\big)$. The variance is trained by the bound itself, added with a small
# weight and a stop-gradient on the mean (Eq. 16): $L_\text{hybrid} = L_\text{simple} + \lambda L_\text{vlb}$, $\lambda = 0.001$ (`utils.lessons.ch03_learned_variance`).
#
# **Respacing** (Section 4): to sample with $K < T$ steps, take a subsequence of times $t_K > \dots > t_0 = 0$ and use the
# *respaced* step $\beta = 1 - \bar\alpha_t/\bar\alpha_s$ and $\tilde\beta = \beta\,\sigma_s^2/\sigma_t^2$ between consecutive times; a learned $v$ still interpolates
# between them. (`sample_ddpm` on a grid of $K$ steps *is* this sampler with $v = 0$ — check below.)

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
hyb_den, hyb_run = LV.hybrid_ddpm(schedule="cosine")
print(f"{'loaded' if hyb_run.loaded else 'trained'}: {len(hyb_run.losses)} steps, {hyb_run.seconds:.0f} s of training")
bounds["cosine, L_simple, sigma^2 = beta"] = bound_of(L.fixed_variance(cos_den, "beta"), cos_den.schedule)
bounds["cosine, L_hybrid, learned sigma^2"] = bound_of(
    LV.learned_variance_predictor(hyb_den.net, hyb_den.schedule, clip_x0=hyb_den.clip_x0), hyb_den.schedule)
for name in ("cosine, L_simple, sigma^2 = beta_tilde", "cosine, L_simple, sigma^2 = beta", "cosine, L_hybrid, learned sigma^2"):
    print(f"{name:40s} {bounds[name].total_bpd:.2f} bits/dim")


# %% slideshow={"slide_type": "subslide"}
class FixedV(torch.nn.Module):
    """An ε-network seen as a learned-variance network with a constant v (0: beta_tilde, 1: beta)."""

    def __init__(self, net, v):
        super().__init__()
        self.net, self.v = net, v

    def forward_with_v(self, x, t, y=None):
        eps = self.net(x, t) if y is None else self.net(x, t, y)
        return eps, torch.full_like(eps, self.v)


x_small = torch.randn(8, *data.train_x.shape[1:], generator=torch.Generator().manual_seed(18)).to(device)
ts_10 = samplers.time_grid(10, T=1000).to(device)
a = LV.sample_learned_variance(FixedV(cos_den.net, 0.0), cos_den.schedule, x_small, ts_10,
                               generator=torch.Generator().manual_seed(19), clip_x0=(-1.0, 1.0))
b = samplers.sample_ddpm(cos_den, x_small, ts_10, generator=torch.Generator().manual_seed(19))
torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)  # float32; x̂_0 divides by a tiny alpha near t = 1

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("respaced sampler with v = 0 = utils.samplers.sample_ddpm on the same grid: True")

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
K_values = by_profile(smoke=[5, 10], cpu=[10, 25, 100], gpu=[10, 25, 100])
n_resp = N_SAMPLES // 2
variants = {"L_simple, sigma^2 = beta_tilde": FixedV(cos_den.net, 0.0), "L_simple, sigma^2 = beta": FixedV(cos_den.net, 1.0),
            "L_hybrid, learned sigma^2": hyb_den.net}
start = time.perf_counter()
respaced = {}
for name, net in variants.items():
    for K in K_values:
        x_start = torch.randn(n_resp, *data.train_x.shape[1:], generator=torch.Generator().manual_seed(20)).to(device)
        out = LV.sample_learned_variance(net, cos_den.schedule, x_start, samplers.time_grid(K, T=1000).to(device),
                                         generator=torch.Generator().manual_seed(21), clip_x0=(-1.0, 1.0))
        respaced[name, K] = metrics.fd_ratio(out.cpu(), data, generator=0)["ratio"]
print(f"FD ratio ({n_resp} samples) by sampling steps K, cosine schedule:   ({time.perf_counter() - start:.0f} s)")
print(f"{'':32s}" + "".join(f"{'K = ' + str(K):>9s}" for K in K_values))
for name in variants:
    print(f"{name:32s}" + "".join(f"{respaced[name, K]:9.2f}" for K in K_values))

# %% [markdown] slideshow={"slide_type": "fragment"}
# Read the table row by row: how much does each variance choice lose as $K$ shrinks? Improved DDPM (Figure 8)
# found that learned variances keep the quality at 50–100 steps where fixed variances degrade. In this run every
# variant is clearly worse at $K = 10$, $\sigma^2 = \beta$ the most, and the learned variances are the best at $K = 10$
# and $25$; all differences at $K \ge 25$ are within the ±0.3 or so that one set of 500 samples can move.
# On the bound, the learned variances do what the paper reports: compare the three cosine rows printed above.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 12. Reproduce the paper (small scale)
#
# **DDPM, CIFAR-10** (Ho et al. 2020, Table 1 for NLL and Table 2 for the ablation; FID and NLL in bits/dim):
#
# | objective (ε prediction) | FID (Table 2) | NLL test (Table 1) |
# |---|---|---|
# | $L$, fixed isotropic Σ (true bound) | 13.51 | ≤ 3.70 |
# | $L_\text{simple}$ | 3.17 | ≤ 3.75 |
#
# (Table 2 also reports that learned diagonal Σ with ε prediction was unstable, and μ̃ prediction gave FID 13.22 with
# the true bound.) Our counterpart on digits — same two objectives, FD ratio instead of FID, bits/dim on the 17-level
# digits with the uniform baseline 4.09 instead of 8:

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
print(f"{'digits (this run)':44s} {'FD ratio':>9s} {'bits/dim':>9s}")
print(f"{'true bound weights, sigma^2 = beta_tilde':44s} {elbo_fd:9.2f} "
      f"{bounds['linear, true-bound weights, sigma^2 = beta_tilde'].total_bpd:9.2f}")
print(f"{'L_simple, sigma^2 = beta_tilde':44s} {lin_fd:9.2f} {bounds['linear, L_simple, sigma^2 = beta_tilde'].total_bpd:9.2f}")
print(f"{'L_simple, cosine schedule':44s} {cos_fd:9.2f} {bounds['cosine, L_simple, sigma^2 = beta_tilde'].total_bpd:9.2f}")
print(f"{'L_hybrid, cosine, learned sigma^2':44s} {'':>9s} {bounds['cosine, L_hybrid, learned sigma^2'].total_bpd:9.2f}")
print(f"{'L_simple + snapping to the 17 levels':44s} {'':>9s} {bounds['linear, L_simple, snapping below delta/2'].total_bpd:9.2f}")
print(f"{'independent pixels':44s} {'':>9s} {indep_bpd:9.2f}")
print(f"{'uniform over the ' + str(LEVELS) + ' levels':44s} {'':>9s} {uniform_bpd:9.2f}")
elbo_better_nll = bounds["linear, true-bound weights, sigma^2 = beta_tilde"].total_bpd < bounds["linear, L_simple, sigma^2 = beta_tilde"].total_bpd
print(f"\nL_simple gives better samples: {lin_fd < elbo_fd};  the true-bound weights give better bits/dim: {elbo_better_nll}")

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Improved DDPM** (Nichol & Dhariwal 2021): the cosine schedule improves sample quality over the linear one
# at equal training (Table 1, ImageNet 64×64), $L_\text{hybrid}$ with learned variances improves the log-likelihood
# over $L_\text{simple}$ while keeping sample quality, and learned variances allow sampling with far fewer steps
# (Figure 8).
#
# **What matches and what does not** (the numbers are those printed above, cpu profile).
# - *Samples, $L_\text{simple}$ vs the true bound*: reproduced, strongly — the true-bound weights give far worse
#   samples, as in DDPM Table 2.
# - *Likelihood, $L_\text{simple}$ vs the true bound*: **not** reproduced — our reweighted model is no better on bits/dim.
#   The paper trained for 800k steps; ours trains for 3,500 (batch 128), and the reweighted loss is the noisier one to optimise.
# - *Learned variances*: reproduced on the bound — $L_\text{hybrid}$ beats both fixed variances of the same schedule.
# - *Cosine vs linear*: **reversed** on 8×8 digits — the linear schedule is better on samples and on the bound
#   (section 10). Skipping the first 20% of the chain behaved as the paper describes in this run: harmless for the
#   linear schedule, harmful for the cosine one (within the noise of one set of 500 samples).
# - *Absolute numbers*: all our fixed-variance bounds are **worse than the independent-pixel baseline**; the snapping
#   experiment of section 8 shows that the gap is the network not having learned the 17 grey levels — with snapping,
#   the same network beats the baseline. The course's quality target for its digits model (FD ratio ≤ 2.0 with 1000
#   samples) is met by the linear $L_\text{simple}$ model with 100 ancestral steps (section 7 prints both sets), not by
#   the cosine one. Sets of 500 samples score lower (section 11), because the floor of the ratio shrinks with the
#   number of samples while a model's defects do not.
#
# Three things limit every comparison: training of about three minutes on a laptop CPU (the papers: hundreds of
# thousands of steps on TPUs or GPUs), digits with 17 grey levels and 64 pixels instead of 256 levels and 3,072 values,
# and a Fréchet distance from a small classifier and a 359-image test split, which is noisy at these sample sizes.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 13. How the 2015 objective of chapter 01 differs from $L_\text{simple}$, term by term
#
# | term | Sohl-Dickstein et al. 2015 (chapter 01): maximise $K$ | DDPM 2020: minimise $L_\text{simple}$ |
# |---|---|---|
# | $L_T$ (prior) | in $K$, but with a *learned* schedule β it also depends on θ | a constant ($\beta$ fixed): dropped |
# | $L_{n-1}$, $2 \le n \le T$ | the exact KL with a learned mean **and** learned diagonal covariance; weight 1 each | the KL's mean part only, with the mean written through ε (Eq. 11), and the weight $w_n$ **replaced by 1**; the variance constant $C_n$ dropped (Σ fixed at $\beta_n$ or $\tilde\beta_n$) |
# | $L_0$ (decoder) | a Gaussian density on continuous data | approximated by the $n = 1$ term of the same ε-loss (the discretised decoder of Eq. 13 is used only to *report* the bound) |
# | how the sum is estimated | Monte Carlo over the steps: the authors' released code draws one random step per minibatch and multiplies by $T$ (chapter 01 draws each step's $x_n$ independently) | one uniformly drawn step $n$ per example (unbiased for the reweighted sum) |
# | result | a true bound on $-\log p$ (a likelihood model) | no longer a bound: a weighted denoising score-matching loss; better samples, slightly worse likelihood (section 12) |
#
# So $L_\text{simple}$ = the 2015 bound with (i) Σ frozen, (ii) the mean re-expressed as a noise prediction, (iii) the
# per-step weights flattened. Improved DDPM undoes (i) with $L_\text{hybrid}$ and keeps (ii) and (iii) for the mean.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 14. Exercises
#
# **Exercise 1 — the posterior coefficients.** Write `my_posterior_coefficients(alpha_bar_prev, alpha_bar)` returning
# $(c_{x_0}, c_{x_t}, \tilde\beta_n)$ of Eq. 7 from $\bar\alpha_{n-1}$ and $\bar\alpha_n$ alone (hint: $\beta_n = 1 - \bar\alpha_n/\bar\alpha_{n-1}$).

# %% slideshow={"slide_type": "-"}
def my_posterior_coefficients(alpha_bar_prev, alpha_bar):
    ...  # your code: return c_x0, c_xt, var

# ch03.check_posterior_coefficients(my_posterior_coefficients)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
# Reference solution
def my_posterior_coefficients(alpha_bar_prev, alpha_bar):
    beta = 1 - alpha_bar / alpha_bar_prev
    c_x0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    c_xt = (1 - beta).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    return c_x0, c_xt, beta * (1 - alpha_bar_prev) / (1 - alpha_bar)


ch03.check_posterior_coefficients(my_posterior_coefficients)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — the KL of two Gaussians of the posterior form.** Write `my_gaussian_kl(mean1, var1, mean2, var2)`,
# elementwise $D_\text{KL}(\mathcal N(\text{mean1}, \text{var1})\,\|\,\mathcal N(\text{mean2}, \text{var2}))$ in nats — the quantity every $L_{n-1}$ sums over pixels.

# %% slideshow={"slide_type": "-"}
def my_gaussian_kl(mean1, var1, mean2, var2):
    ...  # your code

# ch03.check_gaussian_kl(my_gaussian_kl)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
# Reference solution
def my_gaussian_kl(mean1, var1, mean2, var2):
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


ch03.check_gaussian_kl(my_gaussian_kl)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — from ε to $\hat x_0$ and to the score.** Write `my_eps_conversions(x_t, eps, alpha_bar)` returning
# $(\hat x_0, \nabla\log p_t)$. The checker uses Gaussian data, where both are known in closed form.

# %% slideshow={"slide_type": "-"}
def my_eps_conversions(x_t, eps, alpha_bar):
    ...  # your code: return x0_hat, score

# ch03.check_eps_conversions(my_eps_conversions)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
# Reference solution
def my_eps_conversions(x_t, eps, alpha_bar):
    x0_hat = (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
    return x0_hat, -eps / (1 - alpha_bar).sqrt()


ch03.check_eps_conversions(my_eps_conversions)


# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 4 — one training step by hand.** Given a network, clean images `x0` (B, C, H, W), steps `n` (B,), noise
# `eps` and the table `alpha_bars` (T + 1,), return $L_\text{simple}$: the mean over batch and pixels of
# $(\varepsilon - \varepsilon_\theta(x_n, n/T))^2$. The checker replays the draws of `utils.training.diffusion_loss`.

# %% slideshow={"slide_type": "-"}
def my_training_loss(net, x0, n, eps, alpha_bars):
    ...  # your code

# ch03.check_training_step(my_training_loss)


# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
# Reference solution
def my_training_loss(net, x0, n, eps, alpha_bars):
    T = len(alpha_bars) - 1
    ab = alpha_bars[n].reshape(-1, *[1] * (x0.dim() - 1))
    x_n = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return (eps - net(x_n, n.float() / T)).pow(2).mean()


ch03.check_training_step(my_training_loss)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 15. Summary, further reading, and what comes next
#
# - The forward chain has a closed form $q(x_n\mid x_0)$ and a Gaussian posterior $q(x_{n-1}\mid x_n, x_0)$ (Eq. 4, 6–7).
# - The bound splits into $L_T + \sum L_{n-1} + L_0$; with fixed variances each $L_{n-1}$ is a weighted squared error on ε
#   (Eq. 12). $L_\text{simple}$ drops the weights and gets much better samples (DDPM Table 2, and section 9 here).
# - ε, $\hat x_0$, v and the score are four views of one network (Tweedie); `utils.denoiser.Denoiser` converts between them.
# - The likelihood of discrete images needs a discretised decoder; report it next to the uniform and
#   independent-pixel baselines. On 17-level digits a short-trained model loses most of its bits at the smallest
#   noise levels, where it has not learned that pixels live on a grid (section 8).
# - Improved DDPM: the cosine schedule keeps information longer (yet on 8×8 digits the linear one did better here,
#   section 10); learned variances trained through $L_\text{hybrid}$ improve the bound and tolerate fewer sampling steps.
# - `utils.training.zoo` holds the trained models: `toy_ddpm(...)`, `digits_ddpm(schedule=, weighting=, conditional=)`.
#
# **Further reading.** Ho et al. 2020, Appendix A (the bound) and B (architecture); Nichol & Dhariwal 2021, Sections
# 3–4; Kingma et al. 2021, *Variational Diffusion Models* (the bound in continuous time, written with the SNR as
# above); Luo 2022, *Understanding Diffusion Models: A Unified Perspective* (the same derivations, slowly).
#
# **Next: chapter 04 (DDIM).** The network trained here never depended on the forward process being Markovian —
# only on $q(x_n\mid x_0)$. DDIM keeps these marginals, builds a non-Markovian forward process with a deterministic
# reverse, and samples the *same* model in 10–50 steps; $\eta = 1$ recovers this chapter's sampler.
