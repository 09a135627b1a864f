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
# # 04 — DDIM: non-Markovian processes, deterministic and fast sampling, inversion
#
# *Diffusion models, from first principles* — chapter 04.
#
# **The paper.** Jiaming Song, Chenlin Meng and Stefano Ermon, *Denoising Diffusion Implicit Models*, ICLR 2021,
# [arXiv:2010.02502](https://arxiv.org/abs/2010.02502) (DDIM).
#
# **What you will learn**
# - why DDPM's training objective never sees the Markov chain, only the marginals q(x_t | x_0) — and the whole
#   family of *non-Markovian* forward processes q_σ that share them (derived, then checked by Monte Carlo);
# - the generative step of that family (the paper's Eq. 12) with its one knob σ_t(η): η = 1 is DDPM's ancestral
#   sampler (asserted equal, same noise), η = 0 is deterministic;
# - why the same trained network may be sampled on any sub-sequence τ of its T steps (10 instead of 1000);
# - DDIM as an Euler step of the probability-flow ODE in the coordinates (x/α, σ/α) — derived and checked;
# - a small reproduction of the paper's Table 1 on handwritten digits, side by side with the published numbers;
# - inversion (encoding an image into its x_T), interpolation in x_T, and the "consistency" of DDIM samples.
#
# **Prerequisites**: chapter 03 (DDPM: the forward process, the posterior q(x_{t−1} | x_t, x_0), L_simple,
# ancestral sampling). Chapter 02's score view is used once, in section 5.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where this sits
#
# On the course map, DDIM builds directly on DDPM (chapter 03): it keeps the trained network and changes only the
# sampler. Section 5 turns that sampler into the discretisation of an ODE, which is where chapter 05 (score SDEs
# and the probability-flow ODE) and the later fast-solver chapter (DDIM → PNDM → DEIS → DPM-Solver) continue.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from utils import samplers, viz
from utils.lessons import ch04_ddim as ddim
from utils.config import by_profile, start_chapter
from utils.course_map import show_course_map
from utils.data import image_data
from utils.exercises import ch04
from utils.forward import posterior_coefs, q_sample, q_step
from utils.eval.metrics import (classifier_logits, compare, feature_classifier, fd_ratio, mean_sd, sliced_wasserstein,
                                sw_floor)
from utils.data.mixture import analytic_mixture
from utils.oracles import mixture_denoiser
from utils.schedules import vp_linear
from utils.sde import VPSDE
from utils.training.zoo import digits_ddpm, make_schedule

profile, device, gen = start_chapter(seed=0)

# %% slideshow={"slide_type": "-"}
show_course_map("04")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 0. The model: chapter 03's DDPM, unchanged
#
# DDIM needs no training of its own: that is its point. We load chapter 03's ε-predicting UNet on the digits
# (DDPM's linear β schedule, T = 1000 steps, L_simple). `utils.training.zoo.digits_ddpm` trains it through
# `utils.training.cached_train` the first time (a few minutes on a laptop CPU; the cell below prints how long it took)
# and loads it afterwards. We ask
# for the raw network, `clip_x0=None`: DDIM's Eq. 12 does not clip x̂_0, and clipping would break the
# invertibility used in section 8.
#
# Notation: the DDIM paper writes α_t for DDPM's ᾱ_t. The course keeps one name per quantity:
#
# | paper (DDIM) | meaning | code |
# |---|---|---|
# | step t ∈ {1, …, T} (here n) | a training step | time `t = n / T` in [0, 1] |
# | α_t | ᾱ (signal variance) | `schedule.alpha_bar(t)` |
# | √α_t, √(1 − α_t) | α, σ | `schedule.alpha(t)`, `schedule.sigma(t)` |
# | ε_θ^{(t)}(x_t), f_θ^{(t)}(x_t) | ε̂, x̂_0 | `denoiser.eps(x, t)`, `denoiser.x0(x, t)` |
# | σ_t(η) (Eq. 16) | the step's noise std | `ddim.ddim_std`, inside `samplers.ddim_step` |
# | τ_1 < … < τ_S | the sub-sequence | `ddim.ddim_grid(S, T)` → a decreasing grid `ts` |
# | x̄ = x/√α, σ̄ = √((1 − α)/α) (Eq. 14) | x/α, σ/α | `x / schedule.alpha(t)`, `schedule.sigma_ve` |

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
denoiser, result = digits_ddpm(clip_x0=None, T=by_profile(smoke=20, cpu=1000, gpu=1000))  # smoke: a 20-step toy
schedule, T = denoiser.schedule, denoiser.schedule.T
cap = lambda S: min(S, T)  # noqa: E731  (only the smoke profile's T = 20 model needs it)
data = image_data()
size = data.image_size
print(f"{'loaded' if result.loaded else 'trained'} {result.path.name}: {result.seconds:.0f} s of training, "
      f"T = {T}, data {data.name} {tuple(data.train_x.shape)}")

# %% slideshow={"slide_type": "-"}
x = torch.randn(64, 1, size, size, generator=gen).to(device)
ddpm_samples = samplers.sample_ddpm(denoiser, x, samplers.time_grid(100, T=T), generator=gen).cpu()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
viz.plot_loss(result.losses, ax=axes[0], title="chapter 03's DDPM: training loss")
viz.show_images(ddpm_samples, ax=axes[1], title="its DDPM samples (100 ancestral steps)")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The key observation: the loss only sees the marginals
#
# DDPM's forward process is a Markov chain q(x_{1:T} | x_0) = ∏ₙ q(x_n | x_{n−1}). Its simplified loss
# (Ho et al. 2020, Eq. 14; the paper's L_γ with γ ≡ 1) is
#
# $$L_\text{simple}(\theta) = \mathbb{E}_{n,\,x_0,\,\varepsilon}\,\big\|\varepsilon - \varepsilon_\theta(\alpha_n x_0 + \sigma_n \varepsilon,\ n)\big\|^2 .$$
#
# Only the **marginal** q(x_n | x_0) = N(α_n x_0, σ_n² I) appears: x_n is drawn in one shot. Any other joint
# distribution q(x_{1:T} | x_0) with the same marginals gives the *same* loss, so a network trained on DDPM is
# equally a network trained for any of them — and each comes with its own reverse (generative) process. DDIM's
# idea is to pick, among these joints, ones whose reverse process is fast or deterministic.
#
# A check: draw x_t (t = 0.3, step 300) three ways — in one shot from q(x_t | x_0), by running DDPM's Markov chain
# 300 steps, and by the non-Markovian process of section 2 (η = 0, run from t = 1 *downwards*). The network's loss
# is the same in all three (up to Monte Carlo error), because all three x_t have the same distribution given x_0.
# The check (`ddim.same_mean`) must also be able to fail: a fourth x_t, drawn with the variance σ_t² used as the
# noise's standard deviation, has another distribution, and its loss must differ.

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
x0 = data.train_x[:by_profile(smoke=256, cpu=1024, gpu=2048)].to(device)
n_t = 3 * T // 10
t = n_t / T
x_direct, _ = q_sample(schedule, x0, t, generator=gen)
x_markov = x0
for n in range(1, n_t + 1):  # DDPM's forward chain, one step at a time
    x_markov = q_step(schedule, x_markov, (n - 1) / T, n / T, generator=gen)
x_family = ddim.q_sigma_chain(schedule, x0, torch.tensor([1.0, 0.8, 0.6, 0.45, t, 0.0]), eta=0.0, generator=gen)[-1]

x_wrong = schedule.alpha(t) * x0 + schedule.sigma(t) ** 2 * torch.randn(x0.shape, generator=gen).to(device)

stats = {name: ddim.l_simple_per_sample(denoiser, x0, x_t, t)  # ‖ε − ε̂(x_t, t)‖² per image
         for name, x_t in [("one shot", x_direct), ("Markov chain", x_markov), ("η = 0 family", x_family),
                           ("σ_t² as std", x_wrong)]}
for name, loss in stats.items():
    print(f"  L_simple at t = {t} via {name:13s}: {loss.mean():.4f} ± {loss.std() / math.sqrt(len(loss)):.4f}")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ways = ["one shot", "Markov chain", "η = 0 family"]
print("the three ways of drawing x_t give the same loss (within 4 standard errors):",
      all(ddim.same_mean(stats[a], stats[b]) for a in ways for b in ways))
print("the check rejects x_t drawn with σ_t² as its noise's standard deviation:",
      not ddim.same_mean(stats["one shot"], stats["σ_t² as std"]))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. A family of non-Markovian forward processes
#
# Look for reverse-time conditionals of the Gaussian form, for two times s < t,
#
# $$q_\sigma(x_s \mid x_t, x_0) = \mathcal N\big(a\,x_0 + b\,x_t,\ \varsigma^2 I\big),$$
#
# and ask that they keep the marginals. Suppose x_t | x_0 ~ N(α_t x_0, σ_t² I). Then x_s = a x_0 + b x_t + ς z is
# Gaussian given x_0 with
#
# $$\mathbb E[x_s \mid x_0] = (a + b\,\alpha_t)\,x_0, \qquad \operatorname{Var}[x_s \mid x_0] = b^2 \sigma_t^2 + \varsigma^2 .$$
#
# Matching N(α_s x_0, σ_s² I) gives two equations, b = √(σ_s² − ς²)/σ_t and a = α_s − b α_t, so
#
# $$q_\sigma(x_s \mid x_t, x_0) = \mathcal N\Big(\alpha_s x_0 + \sqrt{\sigma_s^2 - \varsigma^2}\,\frac{x_t - \alpha_t x_0}{\sigma_t},\ \varsigma^2 I\Big),$$
#
# the paper's **Eq. 7** (with its α's being our ᾱ's). The noise level ς ≤ σ_s is free: one process per choice.
# Define the joint as q_σ(x_{1:T} | x_0) = q(x_T | x_0) ∏ q_σ(x_{n−1} | x_n, x_0) (the paper's Eq. 6). Starting
# from the correct q(x_T | x_0) and applying the step above downwards, induction gives q_σ(x_n | x_0) =
# N(α_n x_0, σ_n² I) for every n (the paper's Lemma 1).
#
# Two special cases.
# - ς² = the DDPM posterior variance β̃ = σ_s²(1 − ᾱ_t/ᾱ_s)/σ_t²: then Eq. 7 *is* DDPM's posterior
#   q(x_s | x_t, x_0) (chapter 03), and Bayes' rule turns the joint back into DDPM's Markov chain.
# - ς = 0: given x_0, the whole path is deterministic once x_T is drawn. Substituting ε = (x_t − α_t x_0)/σ_t,
#   x_s = α_s x_0 + σ_s ε: **the same ε at every time**.
#
# The paper parameterises ς by **η** ∈ [0, 1] as a fraction of DDPM's: σ_t(η) = η √β̃ (**Eq. 16**),
# `ddim.ddim_std`. For η < 1 the forward process q_σ(x_t | x_s, x_0), obtained by Bayes' rule, depends on x_0 —
# it is not a Markov chain any more, hence the title.
#
# The two moment equations hold for `ddim.q_sigma_coefs` *by construction* (b and a were solved from them), so the
# cell below only shows the round-off. What can fail is the whole chain: run q_σ from t = 1 down to 0 on 40,000 copies
# of one x_0 and compare the mean and variance at every time with α_t x_0 and σ_t², within five Monte Carlo standard
# errors (`ddim.chain_keeps_marginals`). The nearest wrong answer keeps the direction term at full size,
# b = σ_s/σ_t, and adds the noise ς z on top (`ddim.q_sigma_coefs_unshrunk`): right for η = 0, too much variance
# otherwise.

# %% slideshow={"slide_type": "subslide"}
ts64 = torch.linspace(1, 0, 11, dtype=torch.float64)
residual = 0.0
for eta in (0.0, 0.3, 0.7, 1.0):
    for t_, s_ in zip(ts64[:-1], ts64[1:]):
        c_x0, c_xt, var = ddim.q_sigma_coefs(schedule, s_, t_, eta)
        residual = max(residual, float((c_x0 + c_xt * schedule.alpha(t_) - schedule.alpha(s_)).abs()),
                       float((c_xt**2 * schedule.sigma(t_) ** 2 + var - schedule.sigma(s_) ** 2).abs()))
print(f"identity (Eq. 7's b and a solve the two moment equations): largest residual {residual:.1e}, round-off")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x0_mc = torch.tensor([[1.0, -0.5]], dtype=torch.float64).expand(40_000, 2)
print("Monte Carlo: the chain's marginals are N(α_t x_0, σ_t²) at all 10 times, for η = 0, 0.5, 1:",
      all(ddim.chain_keeps_marginals(schedule, x0_mc, ts64, eta, generator=gen) for eta in (0.0, 0.5, 1.0)))
print("the check rejects the unshrunk direction term b = σ_s/σ_t (η = 1):",
      not ddim.chain_keeps_marginals(schedule, x0_mc, ts64, 1.0, coefs=ddim.q_sigma_coefs_unshrunk, generator=gen))

s_, t_ = ts64[5], ts64[4]
print("η = 1 gives DDPM's posterior q(x_s | x_t, x_0):", ddim.is_ddpm_posterior(ddim.q_sigma_coefs, schedule, s_, t_))
print("the check rejects the unshrunk coefficients:",
      not ddim.is_ddpm_posterior(ddim.q_sigma_coefs_unshrunk, schedule, s_, t_))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Non-Markovian, measured.** In a Markov chain, x_t given x_s does not depend on x_0. Regress x_t on (x_s, x_0)
# for one-dimensional data x_0 ~ N(0, 1) under the q_σ joint (t = 0.6, s = 0.3): for η = 1 the coefficient of x_0
# must vanish; for η = 0 the path is x_t = α_t x_0 + σ_t ε with the same ε as x_s, so eliminating ε gives exactly
# x_t = (σ_t/σ_s) x_s + (α_t − σ_t α_s/σ_s) x_0. The tolerance is five standard errors of each least-squares
# coefficient (`ddim.forward_regression`, `ddim.coefficients_match`); each check is also fed the other process.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x0_1d = torch.randn(100_000, 1, generator=gen, dtype=torch.float64)
t_, s_ = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
(coef1, se1), (coef0, se0) = (ddim.forward_regression(schedule, x0_1d, t_, s_, eta, gen) for eta in (1.0, 0.0))
a_t, a_s, sg_t, sg_s = (float(v) for v in (schedule.alpha(t_), schedule.alpha(s_), schedule.sigma(t_), schedule.sigma(s_)))
print("η = 1 (DDPM): given x_s, x_t does not depend on x_0:", ddim.coefficients_match(coef1[1:], se1[1:], [0.0]))
print("the check rejects η = 0 as a Markov chain:", not ddim.coefficients_match(coef0[1:], se0[1:], [0.0]))
print("η = 0: x_t = (σ_t/σ_s) x_s + (α_t − σ_t α_s/σ_s) x_0 exactly:",
      ddim.coefficients_match(coef0, se0, [sg_t / sg_s, a_t - sg_t * a_s / sg_s]))
print("the check rejects the Markov chain's x_t = (α_t/α_s) x_s + noise:",
      not ddim.coefficients_match(coef0, se0, [a_t / a_s, 0.0]))

# %% slideshow={"slide_type": "subslide"}
x0_paths = torch.full((12, 1), 1.0, dtype=torch.float64)
ts_all = torch.arange(T, -1, -1, dtype=torch.float64) / T  # every training step, from t = 1 down to 0
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
tt = ts_all[:-1].numpy()
band = (schedule.alpha(ts_all[:-1]) * 1.0).numpy(), schedule.sigma(ts_all[:-1]).numpy()
for ax, eta in zip(axes, (0.0, 1.0)):
    paths = torch.stack(ddim.q_sigma_chain(schedule, x0_paths, ts_all, eta, generator=gen))[..., 0]
    ax.fill_between(tt, band[0] - 2 * band[1], band[0] + 2 * band[1], color="0.88", label="q(x_t | x_0): mean ± 2σ_t")
    ax.plot(tt, paths.numpy(), lw=0.8)
    ax.plot([0], [1.0], "k*", ms=10, label="x_0 = 1")
    ax.set_xlabel("t")
    ax.set_title(f"η = {eta:g}: " + ("one ε per path (non-Markovian)" if eta == 0 else "DDPM's Markov chain"))
axes[0].set_ylabel("x_t")
axes[0].legend(loc="lower left", fontsize=8)
fig.suptitle("Two forward processes with the same marginals, drawn from t = 1 down to 0", y=1.02)
viz.save_figure(fig, "ch04_family.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The generative process: the paper's Eq. 12
#
# At sampling time x_0 is unknown. The network's guess of it is the "predicted x_0" (the paper's Eq. 9, our x̂_0)
#
# $$\hat x_0(x_t) = \frac{x_t - \sigma_t\,\hat\varepsilon(x_t, t)}{\alpha_t},$$
#
# and the generative step plugs it into Eq. 7: p_θ(x_s | x_t) = q_σ(x_s | x_t, x̂_0(x_t)) (Eq. 10). Since
# (x_t − α_t x̂_0)/σ_t = ε̂ by the definition of x̂_0, the mean simplifies and a sample is
#
# $$x_s = \underbrace{\alpha_s\,\hat x_0}_{\text{predicted } x_0} + \underbrace{\sqrt{\sigma_s^2 - \sigma_t(\eta)^2}\;\hat\varepsilon}_{\text{direction pointing to } x_t} + \underbrace{\sigma_t(\eta)\, z}_{\text{random noise}},\qquad z \sim \mathcal N(0, I),$$
#
# the paper's **Eq. 12** (its three labels are kept). Why is the network trained with L_simple right for every
# σ? The variational objective J_σ of each process is a sum of KLs between Gaussians with the *same* variance
# σ_t(η)², each a weighted ‖x_0 − x̂_0‖², i.e. a weighted ‖ε − ε̂‖² at one t. The weights depend on σ, but when
# ε̂(·, t) has separate parameters per t (or enough capacity), each term has the same minimiser, so J_σ and L_γ
# share their optimum (the paper's Theorem 1: J_σ = L_γ + C).
#
# The sampler, written out (compare with the paper's Eq. 12 term by term):

# %% slideshow={"slide_type": "subslide"}
@torch.no_grad()
def ddim_sample(denoiser, x, ts, eta, generator=None):
    """DDIM (Song et al. 2021, Eq. 12) on a decreasing grid ts, from x at ts[0] to x_0."""
    sch = denoiser.schedule
    for t, s in zip(ts[:-1], ts[1:]):
        eps = denoiser.eps(x, t)                                          # ε̂(x_t, t)
        x0_hat = (x - sch.sigma(t) * eps) / sch.alpha(t)                  # predicted x_0 (Eq. 9)
        std = eta * torch.sqrt(sch.sigma(s) ** 2 / sch.sigma(t) ** 2
                               * (1 - sch.alpha_bar(t) / sch.alpha_bar(s)))  # σ_t(η), Eq. 16
        x_next = sch.alpha(s) * x0_hat + torch.sqrt(sch.sigma(s) ** 2 - std**2) * eps  # x_0 part + direction
        if eta > 0 and std > 0:                                           # random noise
            x_next = x_next + std * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x_next
    return x


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x = torch.randn(16, 1, size, size, generator=gen).to(device)
ts = ddim.ddim_grid(cap(20), T, "quadratic").to(device)
print("inline DDIM = utils.samplers.sample_ddim (same generator) for η = 0, 0.5, 1:",
      all(torch.allclose(ddim_sample(denoiser, x, ts, eta, generator=torch.Generator().manual_seed(1)),
                         samplers.sample_ddim(denoiser, x, ts, eta=eta, generator=torch.Generator().manual_seed(1)),
                         rtol=1e-4, atol=1e-4) for eta in (0.0, 0.5, 1.0)))
a = samplers.sample_ddim(denoiser, x, ts, eta=0.0, generator=torch.Generator().manual_seed(1))
b = samplers.sample_ddim(denoiser, x, ts, eta=0.0, generator=torch.Generator().manual_seed(2))
print("η = 0 is deterministic (two different generators, identical samples):", torch.equal(a, b))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **η = 1 is DDPM.** With σ_t(1)² = β̃ the step is DDPM's ancestral step (Ho et al. 2020, Algorithm 2, with the
# posterior variance β̃ as σ²). Written in DDPM's own form, over all T = 1000 steps, it must give the very same
# samples as `sample_ddim(..., eta=1)` from the same noise (`ddim.ddpm_equals_ddim_eta1`). Algorithm 2's other
# choice, σ_n² = β_n, is the nearest wrong answer; it is fed to the same check on the exact denoiser of a 2-D mixture
# with the same schedule (1000 cheap steps).

# %% slideshow={"slide_type": "-"}
@torch.no_grad()
def ddpm_algorithm2(denoiser, x, generator=None, posterior_variance=True):
    """Ho et al. (2020), Algorithm 2: x_{n−1} = (x_n − β_n/σ_n ε̂)/√(1 − β_n) + √var z, var = β̃_n (or β_n)."""
    sch = denoiser.schedule
    betas, ab = sch.betas.tolist(), sch.alpha_bars.tolist()
    for n in range(sch.T, 0, -1):
        eps = denoiser.eps(x, torch.tensor(n / sch.T))
        mean = (x - betas[n - 1] / math.sqrt(1 - ab[n]) * eps) / math.sqrt(1 - betas[n - 1])
        if n > 1:
            var = betas[n - 1] * (1 - ab[n - 1]) / (1 - ab[n]) if posterior_variance else betas[n - 1]
            mean = mean + math.sqrt(var) * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = mean
    return x


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x = torch.randn(8, 1, size, size, generator=gen).to(device)
print("DDPM Algorithm 2 (all T steps) = DDIM with η = 1, same noise:",
      ddim.ddpm_equals_ddim_eta1(ddpm_algorithm2, denoiser, x))
exact_T = mixture_denoiser(analytic_mixture(), schedule)  # exact x̂_0 of a 2-D mixture, the same T-step schedule
x_2d = torch.randn(64, 2, generator=gen)
print("the check rejects σ_n² = β_n:", not ddim.ddpm_equals_ddim_eta1(
    lambda d, x_, g: ddpm_algorithm2(d, x_, g, posterior_variance=False), exact_T, x_2d))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Skipping steps: sampling on a sub-sequence τ
#
# Nothing in section 2 needs consecutive steps. Pick an increasing sub-sequence τ_1 < … < τ_S of {1, …, T} and
# define the forward process on τ only: q(x_{τ_S} | x_0) and q_σ(x_{τ_{i−1}} | x_{τ_i}, x_0) (Eq. 7 with s = τ_{i−1},
# t = τ_i). Its marginals at the times in τ are still N(α x_0, σ² I), so its L_γ is a weighted sum of the *same*
# per-step terms, restricted to τ: the trained ε̂(·, τ_i) are exactly what its generative process needs. The
# sampler is Eq. 12 with s = τ_{i−1}, t = τ_i. (For η = 1 this is a DDPM "trained with S steps", which the paper
# points out in Table 1's caption.)
#
# Which τ? The paper (Appendix D.2) uses τ_i = ⌊c i⌋ ("linear", here `uniform`) or ⌊c i²⌋ ("quadratic", used for
# CIFAR-10), c chosen so that τ_S is close to T; the authors' released code takes τ_i = 1 + ⌊c (i − 1)²⌋ with
# τ_S = 0.8 T, and τ_i = 1 + (i − 1)⌊T/S⌋ for uniform. `ddim.ddim_grid` builds both; the last network call is at
# step 1 (t = 1/T) and the final step lands on x̂_0. (The library's `samplers.time_grid` instead starts at t = 1
# and makes its last call at t = 1/S; both are legitimate grids.)
#
# **A caveat for other schedules.** Both grids start below T (the quadratic one at 0.8 T), and the sampler starts
# there from x ~ N(0, I). That is only right if ᾱ there is close to 0: true for DDPM's linear β, which the paper and
# this chapter use, but not for the cosine schedule of chapter 03 — there ᾱ(0.8) ≈ 0.09, so the starting point would
# miss the signal α x_0 ≈ 0.3 x_0 that q(x_t) still has. `ddim.ddim_grid(..., schedule=...)` warns in that case
# (and `ddim.sample_table` passes the model's schedule); a grid starting at t = 1 (`samplers.time_grid`) avoids it.

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(10, 2.2))
for row, (S, spacing) in enumerate([(10, "uniform"), (10, "quadratic"), (20, "uniform"), (20, "quadratic")]):
    n_grid = (ddim.ddim_grid(S, T, spacing).double() * T).round()[:-1]
    ax.plot(n_grid.numpy(), np.full(len(n_grid), row), "|", ms=12, mew=2)
ax.set_yticks(range(4), ["S = 10 uniform", "S = 10 quadratic", "S = 20 uniform", "S = 20 quadratic"])
ax.set_xlabel("training step n (t = n / T)")
ax.set_xlim(0, T)
ax.set_title("Sub-sequences τ: where the network is called")
plt.show()

# %% slideshow={"slide_type": "-"}
for name in ("linear", "cosine"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        top = ddim.ddim_grid(10, T, "quadratic", schedule=make_schedule(name, T))[0]
    print(f"{name:6s} schedule: ᾱ at the top of the 10-step quadratic grid (t = {float(top):.3f}) = "
          f"{float(make_schedule(name, T).alpha_bar(top)):.4f}" + (f"\n  warning: {caught[0].message}" if caught else ""))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
tau = ddim.ddim_grid(10, T, "quadratic").double()
print("q_σ on a 10-step quadratic τ keeps every marginal (η = 0 and 1):",
      all(ddim.chain_keeps_marginals(schedule, x0_mc, tau, eta, generator=gen) for eta in (0.0, 1.0)))
print("the check rejects the unshrunk direction term on τ (η = 1):",
      not ddim.chain_keeps_marginals(schedule, x0_mc, tau, 1.0, coefs=ddim.q_sigma_coefs_unshrunk, generator=gen))

# %% slideshow={"slide_type": "subslide"}
x = torch.randn(32, 1, size, size, generator=gen).to(device)
fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
for ax, (S, eta) in zip(axes, [(cap(10), 0.0), (cap(10), 1.0), (cap(100), 0.0)]):
    ts = ddim.ddim_grid(S, T, "quadratic").to(device)
    out = samplers.sample_ddim(denoiser, x, ts, eta=eta, generator=torch.Generator().manual_seed(0))
    viz.show_images(out.cpu(), nrow=8, ax=ax, title=f"S = {S}, η = {eta:g}")
fig.suptitle("One trained network, one x_T batch, three samplers", y=1.04)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. DDIM is an Euler step of an ODE
#
# Take η = 0 and divide Eq. 12 by α_s. With x̄ = x/α and σ̄ = σ/α (the paper's Eq. 14 variables; σ̄ is the VE
# noise level `sigma_ve` of chapter 02), using x̂_0 = x̄_t − σ̄_t ε̂:
#
# $$\bar x_s = \hat x_0 + \bar\sigma_s\,\hat\varepsilon = \bar x_t + (\bar\sigma_s - \bar\sigma_t)\,\hat\varepsilon(x_t, t).$$
#
# That is one **Euler step**, from σ̄_t to σ̄_s, of the ODE
#
# $$\frac{d\bar x}{d\bar\sigma} = \hat\varepsilon\big(\alpha\,\bar x,\ t(\bar\sigma)\big) \qquad \text{(Eq. 14)}.$$
#
# **It is the probability-flow ODE.** For the VP process, dx/dt = −½β x − ½β ∇log p_t (chapter 05), and
# ∇log p_t = −ε/σ. With dα/dt = −½β α, d(x/α)/dt = (dx/dt)/α + ½β x/α = ½β ε/(σ α). And σ̄² = 1/ᾱ − 1 gives
# 2σ̄ dσ̄/dt = β/ᾱ, i.e. dσ̄/dt = β/(2σα). Dividing: dx̄/dσ̄ = ε. So DDIM with many steps converges to the
# probability-flow ODE's solution, with the error of a first-order method, O(1/S). (In these coordinates
# the ODE is exactly linear in σ̄ if ε̂ were constant along the path — which is why one Euler step goes so far; the
# fast-solver chapter builds higher-order steps on this.)

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
x = torch.randn(16, 1, size, size, generator=gen).to(device)
t_, s_ = torch.tensor(0.7), torch.tensor(0.35)
print("a DDIM step (η = 0) is an Euler step of dx̄/dσ̄ = ε̂:",
      ddim.is_ddim_step(ddim.euler_sigma_bar_step, denoiser, x, t_, s_))
print("the check rejects an Euler step in x and σ themselves:",
      not ddim.is_ddim_step(ddim.euler_sigma_step, denoiser, x, t_, s_))

# the probability-flow ODE, rewritten: on the analytic 2-D mixture with its exact denoiser (a continuous schedule);
# dx̄/dt from the ODE's velocity, dσ̄/dt by autograd (ddim.pf_ode_in_bar_coordinates)
sch_c, mix = vp_linear(), analytic_mixture()
oracle, sde = mixture_denoiser(mix, sch_c), VPSDE(sch_c)
xm = 1.5 * torch.randn(256, 2, generator=gen, dtype=torch.float64)
tm = 0.01 + 0.98 * torch.rand(256, generator=gen, dtype=torch.float64)
print("the probability-flow ODE in (x̄, σ̄) is dx̄/dσ̄ = ε̂:",
      ddim.pf_ode_in_bar_coordinates(lambda eps, alpha: eps, sde, oracle, xm, tm))
print("the check rejects dx̄/dσ̄ = ε̂/α:", not ddim.pf_ode_in_bar_coordinates(lambda eps, alpha: eps / alpha, sde, oracle, xm, tm))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Convergence.** On the same testbed, solve the probability-flow ODE accurately (adaptive Runge–Kutta,
# `sample_pf_ode_rk45`) from 500 starting points, then run DDIM with S steps from the same points.
# For a first-order method the error falls like 1/S: a slope of −1 on a log-log plot.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x1 = torch.randn(by_profile(smoke=100, cpu=500, gpu=500), 2, generator=gen, dtype=torch.float64)
ode_ref = samplers.sample_pf_ode_rk45(oracle, x1, rtol=1e-8, atol=1e-8, t_eps=1e-5)
S_list = [5, 10, 20, 50, 100, 200, 500]
ode_err = [float((samplers.sample_ddim(oracle, x1, samplers.time_grid(S).double()) - ode_ref).norm(dim=1).mean())
           for S in S_list]
slope = np.polyfit(np.log(S_list), np.log(ode_err), 1)[0]
print("DDIM → the probability-flow ODE's solution at first order, like Euler (error falls at every refinement, "
      "fitted slope within 0.2 of −1):", ddim.converges_at_order(S_list, ode_err, 1))
print("the check rejects second order:", not ddim.converges_at_order(S_list, ode_err, 2))

# %% slideshow={"slide_type": "subslide"}
paths = {}
for S in (10, 100):
    keep = [x1[:40]]
    samplers.sample_ddim(oracle, x1[:40], samplers.time_grid(S).double(), callback=lambda i, t, x, x0: keep.append(x))
    paths[S] = torch.stack(keep)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
viz.plot_points(mix.sample(3000, gen), ax=axes[0], s=1, alpha=0.15)
for S, color in [(100, "tab:blue"), (10, "tab:red")]:
    for k in range(40):
        axes[0].plot(paths[S][:, k, 0], paths[S][:, k, 1], color=color, lw=0.7, alpha=0.6)
axes[0].plot([], [], color="tab:blue", label="DDIM, S = 100")
axes[0].plot([], [], color="tab:red", label="DDIM, S = 10")
axes[0].legend(fontsize=8)
axes[0].set_title("deterministic paths from x_1 (exact denoiser)")
axes[1].loglog(S_list, ode_err, "o-", label="DDIM vs RK45 solution")
axes[1].loglog(S_list, ode_err[0] * S_list[0] / np.array(S_list), "k--", lw=0.8, label="slope −1")
axes[1].set_xlabel("steps S")
axes[1].set_ylabel("mean |x_DDIM − x_ODE|")
axes[1].legend()
axes[1].set_title(f"first-order convergence (fitted slope {slope:.2f})")
viz.save_figure(fig, "ch04_ode.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Reproduce the paper: Table 1
#
# The paper's Table 1 measures FID on CIFAR-10 (50,000 samples, quadratic τ) for S ∈ {10, 20, 50, 100, 1000}
# and η ∈ {0, 0.2, 0.5, 1}. Its findings: at few steps η = 0 is far better (13.36 vs 41.07 at S = 10), the
# gap closes as S grows, and at S = 1000 all η are close (4.04 to 4.73).
#
# Our small version: chapter 03's digits model, the **same** x_T batch for every cell, quadratic τ (S = 1000, computed in the `gpu` profile, uses
# every step), and the course's Fréchet-distance ratio (`utils.eval.metrics.fd_ratio`: FD in a digit classifier's
# feature space, divided by the FD of as many real images; 1.0 = indistinguishable) with the same n for every cell.
#
# **Cost.** A 1000-step cell is 1000 network calls per image: the paper's S = 1000 column alone is 4,000 calls on
# a batch of 1000 images, about a quarter of an hour on a two-core CPU. The `cpu` profile therefore stops at S = 100
# (720 calls in all, about two minutes) and uses its 100-step cells as the reference where the paper uses 1000 steps;
# the `gpu` profile computes the whole grid, S = 1000 included. The grid is kept in the cache folder
# (`ddim.cached_sample_table`); the cell below says how long the sampling took and whether it was loaded.

# %% slideshow={"slide_type": "subslide"}
STEPS = by_profile(smoke=(2, 4, 5, 10, 20), cpu=(10, 20, 50, 100), gpu=(10, 20, 50, 100, 1000))
S_REF = STEPS[-1]  # the finest grid computed: the reference for "many steps" (1000 in the gpu profile)
ETAS = (0.0, 0.2, 0.5, 1.0)
PAPER_STEPS = (10, 20, 50, 100, 1000)
PAPER_CIFAR10 = {  # Song et al. 2021, Table 1, CIFAR10 (32x32), FID (lower is better), S = 10, 20, 50, 100, 1000
    0.0: (13.36, 6.84, 4.67, 4.16, 4.04),
    0.2: (14.04, 7.11, 4.77, 4.25, 4.09),
    0.5: (16.66, 8.35, 5.25, 4.46, 4.29),
    1.0: (41.07, 18.36, 8.01, 5.78, 4.73),
}
n_table = by_profile(smoke=32, cpu=1000, gpu=2000)
x_table = torch.randn(n_table, 1, size, size, generator=torch.Generator().manual_seed(2021)).to(device)
nfe = {S: len(ddim.ddim_grid(S, T, "quadratic" if S < T else "uniform")) - 1 for S in STEPS}
print("network calls per sample for each S:", nfe)

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
bar = tqdm(total=len(STEPS) * len(ETAS), desc="Table 1 cells")
table, table_seconds, table_loaded = ddim.cached_sample_table(
    denoiser, x_table, STEPS, ETAS, T=T, spacing="quadratic", seed=0, name="ch04-table1",
    progress=lambda S, eta: bar.update(1))
bar.close()
print(f"{'loaded from the cache' if table_loaded else 'sampled'}: {len(table)} cells × {n_table} samples; "
      f"the sampling took {table_seconds / 60:.1f} min on this machine")

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
fd = {key: fd_ratio(samples, n=n_table, generator=torch.Generator().manual_seed(0)) for key, samples in table.items()}
ratios = {key: r["ratio"] for key, r in fd.items()}
noise = fd[(10, 0.0)]["floor_std"] / fd[(10, 0.0)]["floor"]
print(f"FD ratio on digits, n = {n_table} per cell (lower is better)     |  paper, CIFAR-10 FID (Table 1)")
print("η \\ S " + "".join(f"{S:>7}" for S in STEPS) + "   | " + "".join(f"{S:>7}" for S in PAPER_STEPS))
for eta in ETAS:
    print(f"{eta:5.1f} " + "".join(f"{ratios[(S, eta)]:7.2f}" for S in STEPS) + "   | "
          + "".join(f"{v:7.2f}" for v in PAPER_CIFAR10[eta]))
print(f"\nspread of one set of n real images around the floor: ±{noise:.2f} (relative)")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for eta, color in zip(ETAS, ["tab:blue", "tab:green", "tab:orange", "tab:red"]):
    axes[0].plot(PAPER_STEPS, PAPER_CIFAR10[eta], "o-", color=color, label=f"η = {eta:g}")
    axes[1].plot(STEPS, [ratios[(S, eta)] for S in STEPS], "o-", color=color, label=f"η = {eta:g}")
axes[0].set_title("paper: CIFAR-10 FID (Table 1)")
axes[1].set_title(f"here: digits FD ratio, n = {n_table}")
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel("steps S")
    ax.legend(fontsize=8)
axes[0].set_yscale("log")
axes[0].set_yticks([4, 6, 10, 20, 40], ["4", "6", "10", "20", "40"], minor=False)
axes[0].minorticks_off()
axes[0].set_ylabel("FID")
axes[1].set_ylabel("FD ratio (1 = real data)")
viz.save_figure(fig, "ch04_table1.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The noise of every cell.** All cells start from the same x_T batch, so sample i of every cell comes from the same
# x_T. Cutting each cell into four quarters (samples 1–250, 251–500, …) gives k = 4 *paired* sets per cell: the
# ± below is the standard deviation over the quarters, and two cells are compared with
# `utils.eval.metrics.compare` on their paired quarters ("within noise" unless the mean paired difference exceeds
# two standard errors). A quarter has n = 250, so its ratios are larger and about twice as noisy as the n = 1000
# table's; the next cell measures the spread at n = 1000 directly, for the cheapest column.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
K_SPLIT = 4
n_part = n_table // K_SPLIT
parts = {key: [fd_ratio(s[i * n_part:(i + 1) * n_part], n=n_part, generator=torch.Generator().manual_seed(0))["ratio"]
               for i in range(K_SPLIT)] for key, s in table.items()}
print(f"FD ratio, mean ± sd over the {K_SPLIT} paired quarters of each cell (n = {n_part} each)")
print("η \\ S " + "".join(f"{S:>13}" for S in STEPS))
for eta in ETAS:
    print(f"{eta:5.1f} " + "".join(f"{np.mean(parts[(S, eta)]):8.2f} ±{np.std(parts[(S, eta)], ddof=1):4.2f}"
                                   for S in STEPS))
print("\nη = 0 against the other η in each column (the paper has η = 0 best in every column of its Table 1):")
for S in STEPS:
    for eta in ETAS[1:]:
        c = compare(parts[(S, 0.0)], parts[(S, eta)], names=("η = 0", f"η = {eta:g}"))
        print(f"  S = {S:4d}: {c['text']}; reproduces: {'yes' if c['verdict'] == 'η = 0 better' else 'no'}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **How noisy is one cell at n = 1000?** Run the cheapest column (the fewest steps) for η = 0 and η = 1 on four other
# x_T batches of the same size. With the table's own batch that makes k = 5 paired sets at the table's n.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
S0 = STEPS[0]
spread = {0.0: [ratios[(S0, 0.0)]], 1.0: [ratios[(S0, 1.0)]]}  # the table's batch first
for k in range(4):
    x_k = torch.randn(n_table, 1, size, size, generator=torch.Generator().manual_seed(3000 + k)).to(device)
    for eta in (0.0, 1.0):
        out = samplers.sample_ddim(denoiser, x_k, ddim.ddim_grid(S0, T, "quadratic").to(device), eta=eta,
                                   generator=torch.Generator().manual_seed(0))
        spread[eta].append(fd_ratio(out, n=n_table, generator=torch.Generator().manual_seed(0))["ratio"])
for eta in (0.0, 1.0):
    print(f"S = {S0}, η = {eta:g} on five batches of {n_table} (the table's first): "
          + ", ".join(f"{r:.2f}" for r in spread[eta]) + f"   → {mean_sd(spread[eta])}")
c = compare(spread[0.0], spread[1.0], names=("η = 0", "η = 1"))
print(f"S = {S0}, n = {n_table}: {c['text']}; reproduces: {'yes' if c['verdict'] == 'η = 0 better' else 'no'}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **A larger n for the two cheapest columns.** S = 10 and 20 again, on three fresh x_T batches of as many samples as
# the training split has (n = 1438 in the `cpu` profile), for η ∈ {0, 1}: k = 3 paired sets. The ratio of an
# imperfect model grows with n (the floor shrinks, the defect does not): compare these numbers with each other,
# not with the table above.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
n_big = min(by_profile(smoke=128, cpu=1438, gpu=5000), len(data.train_x))
FEW = STEPS[:2]
big_ratios = []  # one dict per batch
for seed in (2022, 2023, 2024):
    x_big = torch.randn(n_big, 1, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    big, big_seconds, big_loaded = ddim.cached_sample_table(denoiser, x_big, FEW, (0.0, 1.0), T=T,
                                                            spacing="quadratic", seed=0, name="ch04-fewsteps")
    big_ratios.append({key: fd_ratio(s, n=n_big, generator=torch.Generator().manual_seed(0))["ratio"]
                       for key, s in big.items()})
    print(f"batch {seed}, {'loaded' if big_loaded else 'sampled'} ({big_seconds / 60:.1f} min); FD ratio, n = {n_big}:")
    for eta in (0.0, 1.0):
        print(f"  η = {eta:g}: " + "   ".join(f"S = {S}: {big_ratios[-1][(S, eta)]:.2f}" for S in FEW))

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
ddpm_full, S_min = ratios[(S_REF, 1.0)], STEPS[0]
print(f"{S_min} steps, η = 0: FD ratio {ratios[(S_min, 0.0)]:.2f}; {S_REF}-step DDPM (η = 1): {ddpm_full:.2f}; "
      f"factor {ratios[(S_min, 0.0)] / ddpm_full:.2f}")
for S_paper in sorted({S_REF, 1000} & set(PAPER_STEPS)):  # the paper at the same reference S, and at 1000 steps
    paper_ref = PAPER_CIFAR10[1.0][PAPER_STEPS.index(S_paper)]
    print(f"  the paper's CIFAR-10 FIDs, 10 steps η = 0 against {S_paper}-step DDPM: {PAPER_CIFAR10[0.0][0]} / "
          f"{paper_ref} = factor {PAPER_CIFAR10[0.0][0] / paper_ref:.2f}")
print(f"η = 0 against η = 1 on the {len(big_ratios)} batches of n = {n_big} (the paper: η = 0 better at every S):")
for S in FEW:
    c = compare([r[(S, 0.0)] for r in big_ratios], [r[(S, 1.0)] for r in big_ratios], names=("η = 0", "η = 1"))
    print(f"  S = {S:3d}: {c['text']}; reproduces: {'yes' if c['verdict'] == 'η = 0 better' else 'no'}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The same grid with an exact denoiser.** On the analytic mixture (DDPM's linear schedule, T = 1000, its exact
# x̂_0), measure the sliced Wasserstein distance to fresh data of 20,000 samples, cut into four paired sets of 5,000
# (same x_T and the same fresh data in set i of every cell), for S = 10 and 20 — the columns where step size matters.
# Here only the sampler can be wrong.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
exact = mixture_denoiser(mix, make_schedule("linear", 1000))
n_2d = by_profile(smoke=1000, cpu=20_000, gpu=20_000)
m_2d = n_2d // 4
x_2d = torch.randn(n_2d, 2, generator=torch.Generator().manual_seed(5))
table_2d = ddim.sample_table(exact, x_2d, (10, 20), ETAS, T=1000, spacing="quadratic", seed=0)
ref_2d = mix.sample(n_2d, torch.Generator().manual_seed(6))
sw = {key: [sliced_wasserstein(s[i * m_2d:(i + 1) * m_2d], ref_2d[i * m_2d:(i + 1) * m_2d], 256,
                               torch.Generator().manual_seed(7)) for i in range(4)] for key, s in table_2d.items()}
floor_2d = sw_floor(lambda m, g: mix.sample(m, g), m_2d, repeats=50, generator=torch.Generator().manual_seed(8))
print(f"sliced Wasserstein to the data, mean ± sd over 4 paired sets of n = {m_2d} "
      f"(data vs data: {floor_2d['mean']:.3f} ± {floor_2d['std']:.3f} over 50 pairs)")
for eta in ETAS:
    print(f"  η = {eta:3.1f}: " + "   ".join(f"S = {S}: {np.mean(sw[(S, eta)]):.3f} ± {np.std(sw[(S, eta)], ddof=1):.3f}"
                                         for S in (10, 20)))
for S in (10, 20):
    for eta in ETAS[1:]:
        c = compare(sw[(S, 0.0)], sw[(S, eta)], names=("η = 0", f"η = {eta:g}"))
        print(f"  S = {S}: {c['text']}; reproduces: {'yes' if c['verdict'] == 'η = 0 better' else 'no'}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What reproduces and what does not.** *(The numbers quoted are the `cpu` profile's, printed above. A verdict is
# `compare`'s, on k ≥ 3 paired sets; "reproduces" asks whether it has the paper's sign.)*
#
# - **How noisy a cell is.** Far noisier than the real-data spread (±0.18) suggests: the same 10-step η = 0 sampler
#   scores 3.5 to 5.2 on five x_T batches of 1000 (4.18 ± 0.75), and the quarters of one cell spread by ±0.14 to ±0.95.
#   Single cells of the n = 1000 table therefore differ by chance by up to about 1 — read it as a picture of the
#   trends, and the comparisons below as the evidence.
# - **At few steps η = 0 beats η = 1 — reproduced at S = 10 and 50, not resolved at S = 20.** At S = 10 every test
#   agrees: η = 0 better on the quarters (1.38 vs 2.81), on five batches of 1000 (4.18 ± 0.75 vs 7.81 ± 0.66) and on
#   three batches of 1438 (7.3 vs 9.3); the paper has 13.36 vs 41.07. At S = 50, η = 0 is better on the quarters
#   (0.98 vs 1.50; the paper 4.67 vs 8.01). At S = 20 both tests say "within noise" (at n = 1438 η = 1 is
#   even ahead in two of the three batches; the paper has 6.84 vs 18.36). At S = 100 the quarters are within noise
#   (0.97 ± 0.19 vs 1.42 ± 0.94). The η = 1 row falls steeply with S, as in the paper (8.01 at S = 10 to 1.88 at
#   S = 100 in the n = 1000 table; the paper 41.07 to 5.78).
# - **η = 0.2 and 0.5 against η = 0 — not resolved.** The paper has η = 0 best in every column, by 1–25%.
#   Here the n = 1000 table has η = 0.2 *ahead* of η = 0 in every column (e.g. 2.83 vs 3.82 at S = 10), but on the
#   quarters every one of these eight comparisons is within noise. Differences of this size are below what a
#   thousand samples of this metric resolve.
# - **At S = 1000 — not computed in the `cpu` profile** (its four cells would take about a quarter of an hour of
#   sampling on two cores; the `gpu` profile computes them). The paper has η = 0 slightly best there (4.04 vs 4.73).
#   One effect would work the other way on a small model: η = 0 follows the probability-flow ODE of the *learned* ε̂
#   and carries every error of ε̂ to the end, while fresh noise lets later steps correct earlier mistakes (Karras et al.
#   2022, Section 4). At S = 100 this table cannot tell η = 0 and η = 1 apart, so it has nothing to say about which
#   effect wins. The paper's CIFAR-10 network was trained for 800k steps on 50,000 images; ours for 3,500 steps on
#   1,438 digits.
# - **The course's target** — 10 steps of η = 0 within 1.5× of a many-step DDPM — is **not met**: a factor 2.04
#   against the 100-step DDPM here (3.82 / 1.88, printed above; the ±0.75 noise of the 10-step cell alone moves it
#   between 1.6 and 2.4, and the 100-step η = 1 cell is noisier still). Nor does the paper meet it: its own Table 1
#   has 13.36 for 10 steps of η = 0 against 5.78 for the 100-step DDPM (a factor 2.31) and 4.73 for the 1000-step
#   DDPM (2.82). Ten first-order steps of the ODE add most of this gap; higher-order solvers of the same ODE (chapter
#   05's Heun, and the fast-solver chapter) close it.
# - **With an exact denoiser**, where only the sampler can be wrong, the comparisons are sharper (four paired sets
#   of 5,000 points, data against data 0.067 ± 0.023): η = 0 beats η = 1 at S = 10 (0.140 vs 0.188) and S = 20
#   (0.101 vs 0.124), and η = 0.5 at S = 20 (0.101 vs 0.110) — the paper's ordering; η = 0.2 is within noise of η = 0
#   at both S, as it nearly is in the paper (13.36 vs 14.04).
# - The metric differs too: a classifier-feature FD ratio on 8×8 digits is not Inception FID on CIFAR-10, and with
#   a thousand samples it cannot resolve differences of 10–20%.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Explore the table
#
# The widget shows the first 32 samples of any cell (all cells start from the same x_T) with its FD ratio. Below
# it, the static version: 16 samples of every cell.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def _show_cell(S, eta):
    samples, caption = ddim.table_view(table, ratios, S, eta, n_show=32)
    fig, ax = plt.subplots(figsize=(4.5, 2.6))
    viz.show_images(samples.cpu(), nrow=8, ax=ax, title=caption)
    plt.show()


_ = widgets.interact(_show_cell, S=widgets.SelectionSlider(options=list(STEPS), value=10, description="S"),
                     eta=widgets.SelectionSlider(options=list(ETAS), value=0.0, description="η"))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(len(ETAS), len(STEPS), figsize=(12, 10))
fig.subplots_adjust(hspace=0.45)
for i, eta in enumerate(ETAS):
    for j, S in enumerate(STEPS):
        samples, caption = ddim.table_view(table, ratios, S, eta, n_show=16)
        viz.show_images(samples.cpu(), nrow=4, ax=axes[i, j])
        axes[i, j].set_title(caption.replace(": ", "\n"), fontsize=9)
fig.suptitle("Table 1 on digits: every cell starts from the same x_T (first 16 of the batch)", y=1.0)
viz.save_figure(fig, "ch04_table1_samples.png", dpi=80)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Consistency: the same x_T gives the same digit at any S
#
# For η = 0 the map x_T → x_0 is a fixed function (the ODE's flow) and the S-step samplers are approximations of
# it, so the same x_T should give images with the same high-level content at every S (the paper's Section 5.2,
# Figure 5). With η = 1 each step draws fresh noise and the content is free to change. Measure it with the digit
# classifier: how often is the digit of an S-step sample the same as that of the finest grid's sample from the same
# x_T (S = 100 in the `cpu` profile, S = 1000 in the `gpu` profile)?

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
clf = feature_classifier()
label = {key: classifier_logits(clf, s).argmax(1) for key, s in table.items()}
for eta in (0.0, 1.0):
    agree = [float((label[(S, eta)] == label[(S_REF, eta)]).float().mean()) for S in STEPS[:-1]]
    mae = [ddim.mean_abs_error(table[(S, eta)], table[(S_REF, eta)]) for S in STEPS[:-1]]
    print(f"η = {eta:g}: same digit as the {S_REF}-step sample: "
          + ", ".join(f"S = {S}: {a:.0%}" for S, a in zip(STEPS, agree))
          + "\n        mean |pixel difference|:          " + ", ".join(f"S = {S}: {m:.2f}" for S, m in zip(STEPS, mae)))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, eta in zip(axes, (0.0, 1.0)):
    rows = torch.cat([table[(S, eta)][:10] for S in STEPS])
    viz.show_images(rows.cpu(), nrow=10, ax=ax, title=f"η = {eta:g}: rows S = " + ", ".join(map(str, STEPS)))
fig.suptitle("Columns share x_T", y=1.0)
viz.save_figure(fig, "ch04_consistency.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **In motion.** Sixteen x_T, sampled with S = 50 (quadratic τ) at η = 0 (top two rows) and η = 1 (bottom two
# rows), every step shown: DDIM's image settles early and only sharpens, DDPM's keeps changing until the last steps;
# saved as `figures/ch04_ddim_vs_ddpm.gif` for the README.

# %% slideshow={"slide_type": "-"}
x_gif = torch.randn(16, 1, size, size, generator=torch.Generator().manual_seed(404)).to(device)
ts_gif = ddim.ddim_grid(by_profile(smoke=5, cpu=50, gpu=50), T, "quadratic").to(device)
states = {}
for eta in (0.0, 1.0):
    states[eta] = [x_gif.cpu()]
    samplers.sample_ddim(denoiser, x_gif, ts_gif, eta=eta, generator=torch.Generator().manual_seed(405),
                         callback=lambda i, t, x_next, x0, keep=states[eta]: keep.append(x_next.cpu()))
frames = [viz.image_grid(torch.cat([a, b]), nrow=8) for a, b in zip(states[0.0], states[1.0])]
gif = viz.save_gif(frames + frames[-1:] * 8, "ch04_ddim_vs_ddpm.gif", fps=8, figsize=(4, 2.3),
                   title="η = 0 (top) and η = 1 (bottom)")
print("wrote", gif.name, "with", len(frames) + 8, "frames")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Inversion and interpolation
#
# With η = 0 each step is an invertible map given ε̂: from x̄_s = x̄_t + (σ̄_s − σ̄_t) ε̂ one can solve for x̄_t.
# In practice ε̂ is evaluated at the point we know: encoding runs the same Euler steps *forwards* in time,
#
# $$\bar x_t = \bar x_s + (\bar\sigma_t - \bar\sigma_s)\,\hat\varepsilon(x_s, s), \qquad s < t,$$
#
# i.e. x_t = α_t x̂_0 + σ_t ε̂ evaluated at (x_s, s) — Eq. 12 with σ = 0, read from s to t (the paper's Section 5.4).
# Decoding the result reproduces the image up to the discretisation error of both passes, which vanishes as
# S grows (both are Euler schemes for the same ODE). At s = 0 the network is not defined (σ = 0): we take
# x̂_0 = x_0 and ε̂ at the first grid time.

# %% slideshow={"slide_type": "subslide"}
@torch.no_grad()
def ddim_encode(denoiser, x0, ts):
    """Deterministic DDIM run backwards: x_0 → x at ts[0] (ts is the decreasing grid used to decode)."""
    sch = denoiser.schedule
    up = ts.flip(0)  # 0 = up[0] < up[1] < ... : forwards in time
    x = x0
    for s, t in zip(up[:-1], up[1:]):
        eps, x0_hat = denoiser.predict(x, s if s > 0 else t)  # ε̂ at the current point
        if s == 0:
            x0_hat = x                                        # at t = 0 the image is its own x̂_0
        x = sch.alpha(t) * x0_hat + sch.sigma(t) * eps        # Eq. 12 (σ = 0) from s up to t
    return x


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x_real = data.test_x[:64].to(device)
ts = ddim.ddim_grid(cap(20), T, "uniform").to(device)
print("inline encoder = utils.lessons.ch04_ddim.ddim_invert:",
      torch.allclose(ddim_encode(denoiser, x_real, ts), ddim.ddim_invert(denoiser, x_real, ts), rtol=1.3e-6, atol=1e-5))
errors = []
for S in (10, 40, 160):  # the exact denoiser of section 5: only the discretisation can be wrong
    ts_2d = samplers.time_grid(S).double()
    x_2d0 = mix.sample(300, torch.Generator().manual_seed(9)).double()
    errors.append(ddim.mean_abs_error(samplers.sample_ddim(oracle, ddim.ddim_invert(oracle, x_2d0, ts_2d), ts_2d), x_2d0))
print("exact denoiser: encode → decode error shrinks like 1/S (10, 40, 160 steps; slope within 0.2 of −1):",
      ddim.converges_at_order((10, 40, 160), errors, 1))
print("the check rejects 1/S²:", not ddim.converges_at_order((10, 40, 160), errors, 2))

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
recon, latents = {}, {}
S_inv = sorted({cap(S) for S in (10, 20, 50, 100)})
for S in S_inv:
    ts = ddim.ddim_grid(S, T, "uniform").to(device)
    latents[S] = ddim.ddim_invert(denoiser, x_real, ts)
    recon[S] = samplers.sample_ddim(denoiser, latents[S], ts)
    print(f"S = {S:3d}: reconstruction mean |error| = {ddim.mean_abs_error(recon[S], x_real):.3f} "
          f"(pixels in [−1, 1]); latent mean {latents[S].mean().item():+.2f}, std {latents[S].std().item():.2f}")

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
viz.show_images(x_real[:32].cpu(), nrow=8, ax=axes[0], title="test digits x_0")
viz.show_images(latents[S_inv[-1]][:32].cpu().clamp(-2.5, 2.5) / 2.5, nrow=8, ax=axes[1],
                title=f"their x_T (S = {S_inv[-1]})")
viz.show_images(recon[S_inv[0]][:32].cpu(), nrow=8, ax=axes[2], title=f"decoded, S = {S_inv[0]}")
viz.show_images(recon[S_inv[-1]][:32].cpu(), nrow=8, ax=axes[3], title=f"decoded, S = {S_inv[-1]}")
viz.save_figure(fig, "ch04_inversion.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The reconstruction error falls roughly like 1/S, as for the exact denoiser: at S = 100 it is about 0.01 per
# pixel on a range of 2 (printed above), invisible in the figure — the paper's Table 2 shows the same trend on
# CIFAR-10. The encoded x_T are not quite standard Gaussians: their standard deviation is below 1 (about 0.85 at
# S = 100), so real test digits map to a somewhat smaller region than the noise the sampler starts from.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Interpolation.** x_T is a standard Gaussian in D = 64 dimensions (784 for MNIST), so its norm concentrates
# near √D: almost all the mass lies on a thin shell. The straight line between two such points cuts *inside* the
# shell (at the midpoint the norm drops by about 1/√2, a region the sampler never saw at training time), while
# spherical interpolation (slerp, as in the paper's Section 5.3) stays on it. (On 8×8 digits the decoded
# straight-line path below is only a little fainter in the middle than the slerp path; the checks measure the
# norms themselves.)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
pairs = torch.randn(2000, 2, size * size, generator=torch.Generator().manual_seed(11))  # 2000 pairs of x_T
mid_slerp = ddim.midpoint_norm_ratio(pairs, ddim.slerp)  # ‖midpoint‖ / RMS of the two end norms
mid_lerp = ddim.midpoint_norm_ratio(pairs, ddim.lerp)
print("slerp's midpoint keeps the norm (mean ratio 1 within 5 standard errors):", ddim.ratio_is(mid_slerp, 1.0))
print("the straight line's midpoint shrinks it by 1/√2 (within 5 standard errors):",
      ddim.ratio_is(mid_lerp, 1 / math.sqrt(2)))
print("the check rejects 'the straight line keeps the norm':", not ddim.ratio_is(mid_lerp, 1.0))

# %% slideshow={"slide_type": "-"}
z = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(12))
w = torch.linspace(0, 1, 9)
path_slerp = ddim.slerp(z[0], z[1], w)
path_lerp = ddim.lerp(z[0], z[1], w)
ts = ddim.ddim_grid(cap(50), T, "uniform").to(device)
pair = ddim.ddim_invert(denoiser, data.test_x[[0, 7]].to(device), ts)
rows = [samplers.sample_ddim(denoiser, path_slerp.to(device), ts),
        samplers.sample_ddim(denoiser, path_lerp.to(device), ts),
        samplers.sample_ddim(denoiser, ddim.slerp(pair[0], pair[1], w.to(device)), ts)]
fig, ax = plt.subplots(figsize=(9, 3.6))
viz.show_images(torch.cat(rows).cpu(), nrow=9, ax=ax)
ax.set_title("rows: slerp between two random x_T · straight line between them · slerp between two encoded test digits",
             fontsize=9)
viz.save_figure(fig, "ch04_interpolation.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Exercises
#
# **Exercise 1 — σ_t(η).** Write `ddim_std(alpha_bar_t, alpha_bar_s, eta)`: the standard deviation of DDIM's
# step from t to an earlier s (tensors of ᾱ, Eq. 16). The checker compares it with η times the DDPM posterior
# standard deviation between the two times, computed independently.

# %% slideshow={"slide_type": "-"}
def my_ddim_std(alpha_bar_t, alpha_bar_s, eta):
    ...  # your code


# ch04.check_ddim_std(my_ddim_std)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def ddim_std_solution(alpha_bar_t, alpha_bar_s, eta):
    return eta * torch.sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s))


ch04.check_ddim_std(ddim_std_solution)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — one DDIM step by hand.** Write `ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_s, eta, z)`
# returning x_s by Eq. 12, given the network's ε̂ and the Gaussian draw z. The checker drives the library's
# `samplers.ddim_step` with the same ε̂ and noise, including the last step to x_0 (ᾱ_s = 1).

# %% slideshow={"slide_type": "-"}
def my_ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_s, eta, z):
    ...  # your code


# ch04.check_ddim_step(my_ddim_step)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def ddim_step_solution(x_t, eps_hat, alpha_bar_t, alpha_bar_s, eta, z):
    x0_hat = (x_t - torch.sqrt(1 - alpha_bar_t) * eps_hat) / torch.sqrt(alpha_bar_t)  # predicted x_0
    std = ddim_std_solution(alpha_bar_t, alpha_bar_s, eta)
    return torch.sqrt(alpha_bar_s) * x0_hat + torch.sqrt(1 - alpha_bar_s - std**2) * eps_hat + std * z


ch04.check_ddim_step(ddim_step_solution)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — why η = 0 is invertible.** Write `inverse_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t)` that
# recovers x_t from the output x_s of a deterministic step t → s, when ε̂ is known. Then answer: why can no
# function do this for η > 0, and why is real inversion (section 8) only approximate even for η = 0?

# %% slideshow={"slide_type": "-"}
def my_inverse_step(x_s, eps_hat, alpha_bar_s, alpha_bar_t):
    ...  # your code


# ch04.check_inverse_step(my_inverse_step)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def inverse_step_solution(x_s, eps_hat, alpha_bar_s, alpha_bar_t):
    sigma_bar = lambda ab: torch.sqrt(1 / ab - 1)  # noqa: E731  σ/α
    x_bar_t = x_s / torch.sqrt(alpha_bar_s) + (sigma_bar(alpha_bar_t) - sigma_bar(alpha_bar_s)) * eps_hat
    return torch.sqrt(alpha_bar_t) * x_bar_t
# For η > 0 the step adds σ_t(η) z with a fresh z: many x_t lead to the same x_s, and x_s does not
# determine z, so the map is not a function of x_s alone. For η = 0 it is exactly invertible given ε̂(x_t, t),
# but ε̂ depends on the unknown x_t: the encoder uses ε̂(x_s, s) instead, an O(step) error that shrinks with S.


ch04.check_inverse_step(inverse_step_solution)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - DDPM's loss only depends on the marginals q(x_t | x_0); a one-parameter family of non-Markovian processes q_σ
#   (Eq. 7) shares them, checked here by closed form and Monte Carlo, so one trained network serves all of them.
# - Their generative step is Eq. 12; σ_t(η) = η √β̃ interpolates between DDPM (η = 1, asserted equal to
#   Algorithm 2 with the same noise) and a deterministic sampler (η = 0).
# - The same network can be sampled on any sub-sequence τ of its training steps.
# - DDIM (η = 0) is Euler's method for the probability-flow ODE in (x/α, σ/α): first-order convergence measured.
# - Deterministic sampling makes x_T a code: encode by running the steps forwards, decode back, interpolate with
#   slerp, and the same x_T keeps its content across S.
# - Table 1 on digits: as in the paper, the η = 1 row improves steeply with S while η = 0 is much flatter, and
#   η = 0 beats η = 1 at S = 10 and 50 (paired comparisons, section 6); at S = 20 and 100, and between η = 0 and
#   its small-η neighbours, the differences are within the noise of a thousand samples per cell, which is far
#   larger than the real-data spread (the `cpu` profile stops at S = 100; the `gpu` profile adds S = 1000). With an exact denoiser η = 0 beats η = 1 at S = 10 and 20, as in the paper.
#
# **Further reading.** Karras et al., *Elucidating the Design Space of Diffusion-Based Generative Models*,
# NeurIPS 2022 ([arXiv:2206.00364](https://arxiv.org/abs/2206.00364)) — DDIM's ODE in σ̄, better step schedules,
# and when stochasticity helps; Lu et al., *DPM-Solver* (NeurIPS 2022) — DDIM as the first-order case of exact
# solvers in log-SNR; Nichol & Dhariwal, *Improved DDPM* (ICML 2021) — respacing with learned variances;
# Mokady et al., *Null-text Inversion* (CVPR 2023) — DDIM inversion for image editing.
#
# **Next: chapter 05 (score SDEs)** puts DDPM and NCSN in continuous time as stochastic differential equations,
# derives the reverse SDE and the probability-flow ODE that section 5 met as the limit of DDIM, and uses that
# ODE for exact likelihoods.
