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
# # 02 — Scores, Langevin dynamics and noise-conditional score networks
#
# *Diffusion models, from first principles* — chapter 02.
#
# **The papers.**
# - Max Welling and Yee Whye Teh, *Bayesian Learning via Stochastic Gradient Langevin Dynamics*, ICML 2011
#   ([PDF](https://www.stats.ox.ac.uk/~teh/research/compstats/WelTeh2011a.pdf)) — the *stochastic-gradient* variant
#   (SGLD), which runs Langevin dynamics on minibatch gradients. Langevin and Hamiltonian samplers are older: Roberts &
#   Tweedie (*Bernoulli* 2(4), 1996) analysed the unadjusted Langevin algorithm and its Metropolis-adjusted version
#   (MALA); Hamiltonian (hybrid) Monte Carlo goes back to Duane, Kennedy, Pendleton & Roweth (*Physics Letters B* 195,
#   1987), reviewed by Neal (*MCMC using Hamiltonian dynamics*, Handbook of MCMC, 2011).
# - Aapo Hyvärinen, *Estimation of Non-Normalized Statistical Models by Score Matching*, JMLR 6, 2005.
# - Pascal Vincent, *A Connection Between Score Matching and Denoising Autoencoders*, Neural Computation 23(7), 2011.
# - Yang Song and Stefano Ermon, *Generative Modeling by Estimating Gradients of the Data Distribution*,
#   NeurIPS 2019, [arXiv:1907.05600](https://arxiv.org/abs/1907.05600) (NCSN).
# - Yang Song and Stefano Ermon, *Improved Techniques for Training Score-Based Generative Models*, NeurIPS 2020,
#   [arXiv:2006.09011](https://arxiv.org/abs/2006.09011) (NCSNv2).
#
# **What you will learn**
# - what the *score* ∇ₓ log p(x) is, and why it is easier to learn than p itself;
# - Langevin dynamics: a sampler that needs nothing but the score — and exactly how it fails on
#   well-separated modes (wrong weights, no mixing), measured;
# - score matching: Hyvärinen's implicit objective and Vincent's *denoising* objective, both derived and checked
#   numerically, and Tweedie's formula, which turns a score into a denoiser;
# - why adding noise fixes the failures, the noise-conditional score network s_θ(x, σ) and annealed Langevin
#   dynamics, trained on 2-D data and on handwritten digits;
# - NCSNv2's five techniques, each as a measured before/after ablation.
#
# **Prerequisites**: chapter 00 (Gaussians, the data). Chapter 01 is not needed.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where this sits
#
# This is the *second root* of the course map. Chapter 01 reached diffusion through a forward Markov chain and a
# variational bound; this chapter reaches the same models through **scores** and **Langevin dynamics**. Chapter 03
# (DDPM) shows that the two roots are one model, and chapter 05 (score SDEs) turns this chapter's annealed
# Langevin dynamics into the discretisation of a stochastic differential equation.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.lessons import ch02_langevin as lg
from utils.lessons import ch02_models as models
from utils.lessons import ch02_score_matching as sm
from utils import viz
from utils.config import by_profile, start_chapter
from utils.course_map import show_course_map
from utils.data import analytic_mixture, image_data, load_digits, two_mode_mixture
from utils.exercises import ch02
from utils.eval.metrics import (compare, fd_ratio, feature_classifier, frechet_distance, mean_sd, sliced_wasserstein,
                                sw_floor)
from utils.lessons.ch00_toolkit import moments_match, score_matches_autograd
from utils.lessons.ch02_checks import (dsm_gap_is_constant, ism_gap_is_constant, overlap_matches_simulation,
                                       sgld_matches_posterior, tweedie_matches_posterior_mean,
                                       variance_after_steps_matches, weights_invisible_near_modes)
from utils.data.mixture import GaussianMixture
from utils.nets import MLP

profile, device, gen = start_chapter(seed=0)

# %% slideshow={"slide_type": "-"}
show_course_map("02")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The score
#
# For a density p(x) on ℝᴰ the **score** is the vector field s(x) = ∇ₓ log p(x): at every point, the direction
# in which the log-density grows fastest. If p(x) = p̃(x)/Z with an unknown normalising constant Z, then
# log p = log p̃ − log Z and the gradient kills the constant:
#
# $$\nabla_x \log p(x) = \nabla_x \log \tilde p(x).$$
#
# That is the whole appeal: a model of the score never needs Z, the integral over all of ℝᴰ that makes
# likelihood models hard.
#
# **A Gaussian.** log N(x; μ, Σ) = −½ (x − μ)ᵀ Σ⁻¹ (x − μ) + const, so ∇ₓ log N(x; μ, Σ) = −Σ⁻¹ (x − μ):
# a linear field pointing back to the mean, stronger along directions of small variance.
#
# **A mixture** p = Σₖ wₖ Nₖ. Differentiate the log of the sum:
#
# $$\nabla_x \log p(x) = \frac{\sum_k w_k \nabla_x N_k(x)}{\sum_j w_j N_j(x)}
#   = \sum_k \underbrace{\frac{w_k N_k(x)}{\sum_j w_j N_j(x)}}_{r_k(x)} \nabla_x \log N_k(x)
#   = -\sum_k r_k(x)\, \Sigma_k^{-1} (x - \mu_k),$$
#
# a responsibility-weighted average of the components' scores (we used ∇N = N ∇ log N). The course's analytic
# mixture computes exactly this; let us check it against automatic differentiation of log p, to float precision.
# The check must reject the nearest wrong answers: the components' scores averaged with the fixed weights w_k
# instead of the responsibilities r_k(x), the opposite sign, and for the Gaussian −Σ(x − μ) (the covariance where
# its inverse belongs).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mix = analytic_mixture()
x = torch.randn(500, 2, generator=gen, dtype=torch.float64) * 2


def score_with_weights(p):
    """A near miss: the components' scores averaged with the weights w_k instead of the responsibilities r_k(x)."""
    diff = (p[:, None] - mix.means).unsqueeze(-1)  # (B, K, D, 1)
    return -(mix.weights[None, :, None] * torch.linalg.solve(mix.covs, diff).squeeze(-1)).sum(1)


exact_score = lambda p: sm.ve_score(mix, p, 0.0)  # noqa: E731
print("mixture score formula matches autograd of log p:", score_matches_autograd(exact_score, mix.log_prob, x))
print("the check rejects weights w_k in place of responsibilities r_k(x):",
      not score_matches_autograd(score_with_weights, mix.log_prob, x))
print("the check rejects the opposite sign:", not score_matches_autograd(lambda p: -exact_score(p), mix.log_prob, x))
mean, cov = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
log_gauss = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob
print("Gaussian score = -Σ⁻¹(x - μ):",
      score_matches_autograd(lambda p: -torch.linalg.solve(cov, (p - mean).T).T, log_gauss, x))
print("the check rejects -Σ(x - μ):", not score_matches_autograd(lambda p: -(cov @ (p - mean).T).T, log_gauss, x))

# %% slideshow={"slide_type": "subslide"}
lim = 3.2
g1 = torch.linspace(-lim, lim, 120)
gx, gy = torch.meshgrid(g1, g1, indexing="xy")
grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
logp = mix.log_prob(grid).reshape(120, 120)
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
axes[0].contourf(gx, gy, logp.exp(), levels=20, cmap="Blues")
viz.plot_points(mix.sample(1500, gen), ax=axes[0], s=1, color="k", alpha=0.3, lim=lim, title="density p(x) and samples")
axes[1].contour(gx, gy, logp, levels=12, colors="0.6", linewidths=0.6)
viz.plot_vector_field(lambda p: sm.ve_score(mix, p, 0.0), ax=axes[1], lim=lim, n=22, normalize=True,
                      title="score ∇ log p(x) (direction only)")
plt.tight_layout()
viz.save_figure(fig, "ch02_score_field.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Langevin dynamics: sampling with the score alone
#
# Start anywhere and repeat, with step size α > 0 and fresh noise z ~ N(0, I):
#
# $$x \leftarrow x + \frac{\alpha}{2} \nabla_x \log p(x) + \sqrt{\alpha}\, z \qquad (\text{NCSN, Section 2.2}).$$
#
# **Why it samples p.** The update is the Euler–Maruyama step (dt = α) of the stochastic differential equation
# dx = ½ ∇ log p(x) dt + dW. The density ρ_t of x_t obeys the Fokker–Planck equation
#
# $$\partial_t \rho = -\nabla\cdot\big(\tfrac12 \rho\, \nabla \log p\big) + \tfrac12 \Delta \rho .$$
#
# Put ρ = p: then ρ ∇ log p = ∇p, so the right-hand side is −½ ∇·∇p + ½ Δp = 0. The data density is a fixed
# point, and under mild conditions the unique one the chain converges to as α → 0 and the number of steps → ∞.
#
# **What a finite step costs.** Take p = N(m, v) in 1-D. One step is x ← r x + (α/2)(m/v) + √α z with
# r = 1 − α/(2v). The mean settles at m; the variance obeys V ← r² V + α, whose fixed point is
#
# $$V^\star = \frac{\alpha}{1-r^2} = \frac{\alpha}{\alpha/v - \alpha^2/(4v^2)} = \frac{v}{1 - \alpha/(4v)} > v.$$
#
# The chain samples a slightly *wider* Gaussian: unadjusted Langevin is biased by O(α) (a Metropolis
# correction would remove it; nobody in this chapter uses one). Below, the algorithm inline and then
# the library's `utils.lessons.ch02_langevin.langevin` with the same generator; then the long-run mean and variance
# of 50,000 independent chains against m and V*, within five standard errors. The check must reject the nearest
# wrong answer, the target's own variance v (a chain without the O(α) bias).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
def langevin_by_hand(score, x, step_size, n_steps, generator):
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + step_size / 2 * score(x) + math.sqrt(step_size) * z
    return x


m, v, alpha = 1.0, 0.5, 0.2
score_1d = lambda x: -(x - m) / v  # noqa: E731
x0 = torch.zeros(50000, 1, dtype=torch.float64)
ours = langevin_by_hand(score_1d, x0, alpha, 300, torch.Generator().manual_seed(1))
lib = lg.langevin(score_1d, x0, alpha, 300, generator=torch.Generator().manual_seed(1))
v_star = v / (1 - alpha / (4 * v))
print("inline Langevin == utils.lessons.ch02_langevin.langevin:", torch.allclose(ours, lib))
print(f"long-run mean m and variance V* = v/(1 - α/4v) = {v_star:.3f} match:",
      moments_match(lib.flatten(), m, math.sqrt(v_star)))
print(f"the check rejects the target's variance v = {v}:", not moments_match(lib.flatten(), m, math.sqrt(v)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Stochastic-gradient Langevin dynamics (Welling & Teh 2011)
#
# Langevin samplers were in use long before (Roberts & Tweedie 1996 analyse them, with and without a Metropolis
# correction); what Welling and Teh added is the minibatch. They sample a Bayesian posterior
# p(θ | x₁..x_N) ∝ p(θ) Πᵢ p(xᵢ | θ) with the same update, replacing the full-data gradient by a minibatch estimate
# of n points and letting the step size shrink (their Section 3):
#
# $$\Delta\theta_t = \frac{\epsilon_t}{2}\Big(\nabla \log p(\theta_t) + \frac{N}{n}\sum_{i=1}^{n} \nabla \log p(x_{t_i} \mid \theta_t)\Big) + \eta_t,
#   \qquad \eta_t \sim N(0, \epsilon_t),$$
#
# with Σ ε_t = ∞ and Σ ε_t² < ∞ (they use ε_t = a (b + t)^{−γ}). The argument: the minibatch noise in the
# gradient has variance ∝ ε_t², the injected noise ε_t, so as ε_t → 0 the injected noise dominates and the chain
# becomes exact Langevin dynamics on the posterior. Checked below on a posterior we know in closed form:
# data xᵢ ~ N(θ, 1), prior θ ~ N(0, 10), so θ | x ~ N(Σx/P, 1/P) with precision P = 1/10 + N. 500 independent
# chains of `utils.lessons.ch02_langevin.sgld` (1000 steps, ε_t = 10⁻⁴ (1 + t/50)^−0.55) are compared with its mean
# and std within five standard errors. The nearest wrong answer is the minibatch sum without the factor N/n: its
# chains sample the posterior of n points, √(N/n) ≈ 3 times too wide.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
g_sgld = torch.Generator().manual_seed(2)
N, n_batch = 1000, 100
data_1d = 1.0 + torch.randn(N, generator=g_sgld, dtype=torch.float64)


def grad_minibatch(theta, batch):
    """∇ log p(θ) + (N/n) Σ_batch ∇ log p(x_i | θ); theta (C,), batch (C, n)."""
    return -theta / 10 + N / batch.shape[1] * (batch - theta[:, None]).sum(1)


def grad_without_rescaling(theta, batch):
    """A near miss: the minibatch sum not scaled up by N/n."""
    return -theta / 10 + (batch - theta[:, None]).sum(1)


def sgld_check(grad):
    return sgld_matches_posterior(grad, data_1d, 10.0, n_batch=n_batch, chains=500, n_steps=1000,
                                  generator=torch.Generator().manual_seed(3))


print("SGLD chains match the exact posterior's mean and std:", sgld_check(grad_minibatch))
print("the check rejects the minibatch gradient without N/n:", not sgld_check(grad_without_rescaling))

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Langevin with the exact score on the analytic mixture
#
# Three components with weights 0.2 / 0.3 / 0.5, the exact score everywhere, 1000 Langevin steps from uniform
# noise. We measure with the sliced Wasserstein distance (SW) to fresh samples, in units of the data-vs-data
# *floor* at the same sample size (1.0 = as close as two independent data samples), and count how many particles
# end near each component's mean.

# %% slideshow={"slide_type": "-"}
N_EVAL = by_profile(smoke=500, cpu=2000, gpu=4000)
floor_stats = sw_floor(mix.sample, N_EVAL, repeats=5, generator=0)
floor_2d = floor_stats["mean"]
x_init = (torch.rand(N_EVAL, 2, generator=gen) - 0.5) * 8
x_lang = lg.langevin(lambda p: sm.ve_score(mix, p, 0.0), x_init, 0.01, by_profile(smoke=100, cpu=1000, gpu=1000), generator=gen)
sw_lang = sliced_wasserstein(x_lang, mix.sample(N_EVAL, gen), generator=1)
print(f"Langevin on the analytic mixture: SW = {sw_lang:.3f}, data-vs-data floor = {floor_2d:.3f} ± {floor_stats['std']:.3f} "
      f"(sd over 5 pairs), ratio = {sw_lang / floor_2d:.2f}")
print("fraction of particles per component:", [round(w, 3) for w in lg.nearest_mode_fractions(x_lang, mix.means).tolist()],
      f"(binomial s.e. at most {0.5 / math.sqrt(N_EVAL):.3f})  true weights:", mix.weights.tolist())

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Why the weights come out wrong (Song & Ermon 2019, Section 3.2)
#
# Every particle found a component, and each cloud has the right shape, yet the fractions printed above are not
# the weights. To see why, take two far-apart modes with weights 0.2 and 0.8 (`two_mode_mixture`: means (∓2, 0), std 0.5). Near mode 1 the
# responsibility r₁(x) ≈ 1, so
#
# $$\nabla_x \log p(x) \approx -\frac{x-\mu_1}{s^2} \quad\text{near } \mu_1, \qquad \text{whatever } w_1 \text{ is}.$$
#
# The weights enter the score only through the responsibilities, which are ≈ 0 or 1 except in the
# low-density gap between the modes. Two consequences, both measured below:
# 1. **wrong weights**: a particle that starts nearer the small mode falls into it and stays; from a uniform start
#    the chain reports the fraction of initial points in each basin (about ½), not 0.2;
# 2. **slow mixing**: crossing the low-density gap takes a time that grows exponentially with the depth of the
#    gap, so the chain corrects (1) only very slowly — the printout below follows it for up to 10 000 steps.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
two = two_mode_mixture()  # weights 0.2 / 0.8
even = two_mode_mixture(weights=(0.5, 0.5))


def near_modes(mixture):
    """200 points around each of the two means (std 0.5)."""
    return torch.cat([mixture.means[k] + 0.5 * torch.randn(200, 2, generator=gen, dtype=torch.float64) for k in range(2)])


print("near the modes, the 0.2/0.8 and 0.5/0.5 mixtures have the same score (max difference < 0.01):",
      weights_invisible_near_modes(two, even, near_modes(two)))
close, close_even = two_mode_mixture(separation=1.0), two_mode_mixture(weights=(0.5, 0.5), separation=1.0)
print("the check does see the weights when the modes overlap (means 1 apart):",
      not weights_invisible_near_modes(close, close_even, near_modes(close)))

# %% slideshow={"slide_type": "-"}
x_unif = (torch.rand(N_EVAL, 2, generator=gen) - 0.5) * 10
exact_two = lambda p: sm.ve_score(two, p, 0.0)  # noqa: E731
rows = []
for n_steps in by_profile(smoke=[10, 100], cpu=[100, 1000, 10000], gpu=[100, 1000, 10000]):
    out = lg.langevin(exact_two, x_unif, 0.05, n_steps, generator=gen)
    rows.append((n_steps, lg.nearest_mode_fractions(out, two.means)[0].item()))
x_big = two.means[1].float() + 0.5 * torch.randn(N_EVAL, 2, generator=gen)  # everyone starts in the big mode
stuck = lg.langevin(exact_two, x_big, 0.05, rows[-1][0], generator=gen)
print("weight of the small mode (true 0.2) after Langevin from a uniform start:")
for n_steps, w in rows:
    print(f"  {n_steps:6d} steps: {w:.3f}")
print(f"starting all {N_EVAL} particles in the big mode, after {rows[-1][0]} steps the small mode holds "
      f"{lg.nearest_mode_fractions(stuck, two.means)[0].item():.3f} (should be 0.2)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Try it.** The widget runs Langevin on the two-mode mixture from a uniform start with your step size and
# number of steps; the right panel compares the histogram of the first coordinate with the true marginal density.
# Small steps are accurate but slow; large steps mix faster but are biased (the clouds get wider — the V* above).
# Try to find a setting that gets the 0.2 / 0.8 weights *and* the shapes right.

# %% slideshow={"slide_type": "-"}
def marginal_x(mixture, u):
    """Density of the first coordinate of an isotropic 2-D mixture at points u (M,)."""
    sd = mixture.covs[:, 0, 0].sqrt()
    comps = torch.exp(-0.5 * ((u[:, None] - mixture.means[:, 0]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    return comps @ mixture.weights


def show_langevin(step_size=0.05, n_steps=300, axes=None):
    x = lg.langevin(exact_two, x_unif[:1000], step_size, n_steps, generator=torch.Generator().manual_seed(0))
    frac = lg.nearest_mode_fractions(x, two.means)[0].item()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    viz.plot_points(x, ax=axes[0], s=3, lim=5, title=f"{n_steps} steps of size {step_size:.3g}")
    u = torch.linspace(-5, 5, 300, dtype=torch.float64)
    axes[1].hist(x[:, 0].clamp(-5, 5).numpy(), bins=60, range=(-5, 5), density=True, alpha=0.5, label="Langevin")
    axes[1].plot(u, marginal_x(two, u), "k", lw=1.2, label="true p(x₁)")
    axes[1].set_title(f"small-mode weight {frac:.2f} (true 0.20)")
    axes[1].legend(fontsize=8)
    return axes


# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def _widget(log10_step=-1.3, n_steps=300):
    show_langevin(10**log10_step, n_steps)
    plt.show()


_ = widgets.interact(_widget, log10_step=widgets.FloatSlider(value=-1.3, min=-3, max=-0.2, step=0.1, description="log₁₀ α"),
                 n_steps=widgets.IntSlider(value=300, min=10, max=3000, step=10, description="steps"))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(2, 2, figsize=(9, 7))
show_langevin(0.01, 100, axes[0])
show_langevin(0.5, 1000, axes[1])
plt.tight_layout()
viz.save_figure(fig, "ch02_langevin_failure.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Score matching: learning the score from samples
#
# We want s_θ ≈ ∇ log p from samples of p. The natural objective, *explicit score matching* (ESM, a Fisher
# divergence), needs the unknown target:
#
# $$J_E(\theta) = \tfrac12\, \mathbb E_{p}\, \|s_\theta(x) - \nabla_x \log p(x)\|^2 .$$
#
# **Hyvärinen's trick (2005, Theorem 1).** Expand the square:
# J_E = E ½‖s_θ‖² − E[s_θᵀ ∇ log p] + E ½‖∇ log p‖². The last term does not depend on θ. For the middle
# term, write it as an integral and use p ∇ log p = ∇p, then integrate by parts coordinate by coordinate
# (assuming p(x) s_θ(x) → 0 as ‖x‖ → ∞):
#
# $$\mathbb E_p[s_\theta^\top \nabla \log p] = \int s_\theta(x)^\top \nabla p(x)\, dx
#   = \sum_d \int s_{\theta,d}\, \partial_d p \, dx = -\sum_d \int p\, \partial_d s_{\theta,d}\, dx
#   = -\mathbb E_p[\operatorname{tr} \nabla_x s_\theta(x)] .$$
#
# Hence the *implicit* objective, computable from samples alone,
#
# $$J_I(\theta) = \mathbb E_p\big[\operatorname{tr} \nabla_x s_\theta(x) + \tfrac12 \|s_\theta(x)\|^2\big] = J_E(\theta) - \tfrac12 \mathbb E_p\|\nabla \log p\|^2 .$$
#
# The trace of the Jacobian costs D backward passes: fine in 2-D, hopeless for images.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Denoising score matching (Vincent 2011)
#
# Noise the data, x̃ = x + σ z, so that p_σ(x̃) = ∫ p(x) N(x̃; x, σ² I) dx, and match the score of p_σ. Expand
# ESM on p_σ again; the cross term is
#
# $$\mathbb E_{p_\sigma}[s_\theta^\top \nabla \log p_\sigma] = \int s_\theta(\tilde x)^\top \nabla_{\tilde x} p_\sigma(\tilde x)\, d\tilde x
#   = \iint p(x)\, s_\theta(\tilde x)^\top \nabla_{\tilde x} N(\tilde x; x, \sigma^2 I)\, dx\, d\tilde x
#   = \mathbb E_{x, \tilde x}\big[s_\theta(\tilde x)^\top \nabla_{\tilde x} \log N(\tilde x; x, \sigma^2 I)\big],$$
#
# where we moved ∇ inside the integral over x and used ∇N = N ∇ log N. Completing the square with the (θ-free)
# term ½‖∇ log N‖² gives
#
# $$J_D(\theta) = \tfrac12\, \mathbb E_{x,\tilde x} \Big\| s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2
#   = \tfrac12\, \mathbb E_{x, z} \Big\| s_\theta(x + \sigma z) + \frac{z}{\sigma}\Big\|^2 = J_E(\theta; p_\sigma) + C.$$
#
# No Jacobian, no unknown score: a plain regression onto −z/σ, the direction that undoes the noise. Both
# equivalences hold for *every* θ, so the differences J_I − J_E and J_D − J_E(p_σ) must be the same constant
# for any network: −½ E‖∇ log p‖² and ½ E‖z/σ‖² − ½ E‖∇ log p_σ‖². Three random networks, checked by Monte Carlo on
# 60,000 points, within five standard errors (from 30 batches). The checks must reject the nearest wrong answers:
# the trace with the wrong sign (integration by parts without its minus), and a DSM target +(x̃ − x)/σ² (the
# opposite sign) or −(x̃ − x)/σ (a σ where σ² belongs).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
g_eq = torch.Generator().manual_seed(3)
x_mc = mix.sample(60000, g_eq)
true_mc = sm.ve_score(mix, x_mc, 0.0)
sigma_eq = 0.5
nets = []
for seed in range(3):
    torch.manual_seed(seed)
    nets.append(sm.PlainScore(MLP(dim=2, hidden=64, depth=2, time_dim=16)))
net = nets[-1]


def ism_trace_flipped(score, x):
    """A near miss: E[−tr ∇s + ½‖s‖²], the trace with the wrong sign."""
    return sm.implicit_score_matching_loss(lambda p: -score(p), x)


def dsm_check(target):
    return dsm_gap_is_constant(target, nets, x_mc, sigma_eq, lambda p: sm.ve_score(mix, p, sigma_eq),
                               generator=torch.Generator().manual_seed(4))


print("J_I - J_E = -½ E‖∇ log p‖² for the three networks:",
      ism_gap_is_constant(sm.implicit_score_matching_loss, nets, x_mc, true_mc))
print("the check rejects the trace with the wrong sign:", not ism_gap_is_constant(ism_trace_flipped, nets, x_mc, true_mc))
print("J_D - J_E(p_σ) is the same constant for the three networks, target -(x̃ - x)/σ²:",
      dsm_check(lambda x_noisy, x_clean, s: -(x_noisy - x_clean) / s**2))
print("the check rejects the target +(x̃ - x)/σ²:", not dsm_check(lambda x_noisy, x_clean, s: (x_noisy - x_clean) / s**2))
print("the check rejects the target -(x̃ - x)/σ:", not dsm_check(lambda x_noisy, x_clean, s: -(x_noisy - x_clean) / s))

# %% [markdown] slideshow={"slide_type": "-"}
# The denoising loss inline, then `utils.lessons.ch02_score_matching.dsm_loss` with the same generator:

# %% slideshow={"slide_type": "-"}
def dsm_by_hand(score, x, sigma, generator):
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return 0.5 * (score(x + sigma * z) + z / sigma).pow(2).sum(1).mean()


print("inline DSM loss == utils.lessons.ch02_score_matching.dsm_loss:",
      torch.allclose(dsm_by_hand(net, x_mc[:512], 0.3, torch.Generator().manual_seed(4)),
                     sm.dsm_loss(net, x_mc[:512], 0.3, generator=torch.Generator().manual_seed(4))))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Tweedie's formula: the score *is* a denoiser
#
# For x̃ = x + σ z, differentiate p_σ(x̃) = ∫ p(x) N(x̃; x, σ² I) dx under the integral:
#
# $$\nabla_{\tilde x} p_\sigma(\tilde x) = \int p(x)\, N(\tilde x; x, \sigma^2 I)\, \frac{x - \tilde x}{\sigma^2}\, dx
#   = p_\sigma(\tilde x)\, \frac{\mathbb E[x \mid \tilde x] - \tilde x}{\sigma^2} .$$
#
# Divide by p_σ(x̃):
#
# $$\boxed{\;\mathbb E[x \mid \tilde x] = \tilde x + \sigma^2 \nabla_{\tilde x} \log p_\sigma(\tilde x)\;}$$
#
# The best denoiser (in mean squared error) is one gradient step on log p_σ. This is why a score network
# trained by denoising is also a denoiser, and why NCSNv2 can end sampling with a "denoising step". For the
# mixture, E[x | x̃] has its own closed form (each component's Gaussian posterior mean, weighted by the
# responsibilities); it agrees with x̃ + σ² times the exact score at every noise level (to float precision), and the
# check rejects the two near misses x̃ − σ² ∇ log p_σ (the sign) and x̃ + σ ∇ log p_σ (σ where σ² belongs):

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for sigma in (0.1, 0.5, 2.0):
    xn = mix.sample(1000, gen).double() + sigma * torch.randn(1000, 2, generator=gen, dtype=torch.float64)
    rejects = (not tweedie_matches_posterior_mean(lambda x, s, score: x - s**2 * score, mix, xn, sigma)
               and not tweedie_matches_posterior_mean(lambda x, s, score: x + s * score, mix, xn, sigma))
    print(f"σ = {sigma}: posterior mean == x̃ + σ² ∇ log p_σ(x̃):",
          tweedie_matches_posterior_mean(sm.tweedie_denoise, mix, xn, sigma), "| rejects both near misses:", rejects)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Why noise helps: scores are wrong where there is no data
#
# Score matching weights its errors by p(x) (every objective above is an expectation under p). Where p is tiny,
# nothing constrains s_θ. Below, a network trained with Hyvärinen's implicit objective on clean samples of the
# analytic mixture, and the error ‖s_θ − ∇ log p‖ over the plane.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
mix_data = models.mixture_data()  # 20,000 points of `mix`
ism = models.train_ism()  # sm.PlainScore(MLP(2, 128, 3)), sm.implicit_score_matching_loss, 1,500 steps
print(f"trained in {ism.seconds:.0f} s (loaded from cache: {ism.loaded})")
ism_model = ism.model.cpu()

# %% slideshow={"slide_type": "-"}
lim_e, n_e = 3.5, 70
g_e = torch.linspace(-lim_e, lim_e, n_e)
logp_e = mix.log_prob(sm.grid_points(lim_e, n_e)).reshape(n_e, n_e)
err_ism = sm.score_error_grid(ism_model, lambda p: sm.ve_score(mix, p, 0.0), lim_e, n_e)
dense, sparse = logp_e > -2.0, logp_e < -8.0
print(f"median score error where log p > -2 (data): {err_ism[dense].median():.2f};  "
      f"where log p < -8 (no data): {err_ism[sparse].median():.2f}")


def error_panel(ax, err, title, vmax=5.0):
    im = ax.imshow(err.clamp(max=vmax).numpy(), origin="lower", extent=(-lim_e, lim_e, -lim_e, lim_e), cmap="magma",
                   vmin=0, vmax=vmax)
    ax.contour(g_e, g_e, logp_e, levels=[-8, -4, -2, 0], colors="w", linewidths=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


fig, ax = plt.subplots(figsize=(4.2, 3.8))
plt.colorbar(error_panel(ax, err_ism, "‖s_θ − ∇ log p‖, implicit score matching"), ax=ax, fraction=0.046)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The error is small inside the white contours (the data) and grows outside: exactly where Langevin dynamics
# starts. Song & Ermon's remedy: perturb the data with Gaussian noise. The noised density p_σ is positive
# everywhere, its samples fill the gaps, and its score is easier to learn — but p_σ is not p. So learn the scores of
# a **whole ladder** of noise levels σ₁ > σ₂ > … > σ_L at once, large σ for getting from noise to the
# neighbourhood of the data (and between modes), small σ for the details.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Noise-conditional score networks and annealed Langevin dynamics
#
# **The network** s_θ(x, σ) takes the noise level as an input. The course's networks take a time t ∈ [0, 1], so we
# map σ to t by its position on a log scale and divide the output by σ (NCSNv2's Technique 3):
#
# $$t(\sigma) = \frac{\log(\sigma/\sigma_L)}{\log(\sigma_1/\sigma_L)} \in [0, 1], \qquad s_\theta(x, \sigma) = \frac{\mathrm{net}(x, t(\sigma))}{\sigma} .$$
#
# **The objective** (NCSN Section 4.2) is the denoising loss averaged over the levels with weights λ(σ):
#
# $$\mathcal L(\theta) = \frac{1}{L}\sum_{i=1}^{L} \lambda(\sigma_i)\; \tfrac12\, \mathbb E\Big\| s_\theta(x + \sigma_i z, \sigma_i) + \frac{z}{\sigma_i}\Big\|^2 .$$
#
# The target z/σ has norm ≈ √D/σ, so each level's loss scales like 1/σ². The paper picks λ(σ) = σ², which makes
# every level's term ½ E‖σ s_θ + z‖² of the same order — and with the division by σ above it is simply
# ½ E‖net + z‖²: the network predicts −z at every level.
#
# **The paper's recipe** (NCSN Section 5): L = 10 levels geometric from σ₁ = 1 to σ_L = 0.01; for
# sampling T = 100 Langevin steps per level with step α_i = ε σ_i²/σ_L², ε = 2·10⁻⁵ (their images live in
# [0, 1]; ours in [−1, 1]). The choice α_i ∝ σ_i² keeps the "signal-to-noise" of each step constant: the drift
# (α_i/2)‖s‖ ≈ (α_i/2)√D/σ_i over the noise √α_i is ½√(ε D)/σ_L at every level.
#
# | paper (NCSN) | code |
# |---|---|
# | σ_1 > … > σ_L | `sigmas` (decreasing), `lg.geometric_sigmas(σ_1, σ_L, L)` |
# | s_θ(x, σ) | `sm.NoiseConditionalScore(net, σ_L, σ_1)(x, sigma)` |
# | ε, T, α_i = ε σ_i²/σ_L² | `eps`, `n_steps`, `lg.annealed_step_sizes` |
# | x_t = x_{t−1} + (α_i/2) s_θ + √α_i z_t | `lg.langevin`, one level of `lg.annealed_langevin` |

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Annealed Langevin dynamics (NCSN Algorithm 1), inline

# %% slideshow={"slide_type": "-"}
def annealed_langevin_by_hand(score, x, sigmas, eps, T, generator):
    """NCSN Algorithm 1: for each level, T Langevin steps of size α_i = ε σ_i²/σ_L²."""
    sigma_L = sigmas[-1]
    for sigma_i in sigmas:
        alpha_i = eps * sigma_i**2 / sigma_L**2
        level = torch.full((x.shape[0],), sigma_i, dtype=x.dtype)
        for _ in range(T):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + alpha_i / 2 * score(x, level) + math.sqrt(alpha_i) * z
    return x  # x_T of the last level


paper_sigmas = models.paper_sigmas()  # lg.geometric_sigmas(1.0, 0.01, 10)
exact_mix = lambda p, s: sm.ve_score(mix, p, s)  # noqa: E731
x_start = (torch.rand(256, 2, generator=gen, dtype=torch.float64) - 0.5) * 8
ours = annealed_langevin_by_hand(exact_mix, x_start, paper_sigmas.tolist(), 2e-5, 5, torch.Generator().manual_seed(5))
lib = lg.annealed_langevin(exact_mix, x_start, paper_sigmas, eps=2e-5, n_steps=5, generator=torch.Generator().manual_seed(5))
print("inline annealed Langevin == utils.lessons.ch02_langevin.annealed_langevin:", torch.allclose(ours, lib))

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Training s_θ(x, σ) on the analytic mixture
#
# A small MLP (`utils.nets.MLP`), the paper's ten levels from 1 to 0.01, trained through `cached_train`
# (a re-run loads the weights).

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
ncsn2d = models.train_ncsn_2d()  # sm.NoiseConditionalScore(MLP(2, 128, 4)), sm.ncsn_loss_fn(paper_sigmas), 3,000 steps
print(f"trained in {ncsn2d.seconds:.0f} s (loaded from cache: {ncsn2d.loaded})")
score2d, score2d_raw = ncsn2d.model.cpu(), ncsn2d.raw_model.cpu()
ax = viz.plot_loss(ncsn2d.losses, title="NCSN loss, analytic mixture (λ(σ) = σ²)")
plt.show()

# %% slideshow={"slide_type": "subslide"}
T_2D = by_profile(smoke=5, cpu=100, gpu=100)
snapshots = {}
keep = lambda i, k, x: snapshots.__setitem__(i, x.clone()) if k == T_2D - 1 else None  # noqa: E731
x_start = (torch.rand(N_EVAL, 2, generator=gen) - 0.5) * 8
t0 = time.perf_counter()
samples_2d = lg.annealed_langevin(score2d, x_start, paper_sigmas, eps=2e-5, n_steps=T_2D, generator=gen, callback=keep)
sec_2d = time.perf_counter() - t0
sw_2d = sliced_wasserstein(samples_2d, mix.sample(N_EVAL, gen), generator=1)
print(f"annealed Langevin, learned score, paper recipe (L = 10, T = {T_2D}, ε = 2e-5): {sec_2d:.0f} s")
print(f"SW = {sw_2d:.3f}   data-vs-data floor = {floor_2d:.3f} ± {floor_stats['std']:.3f}   ratio = {sw_2d / floor_2d:.2f} "
      f"(two data sets land within ± {floor_stats['std'] / floor_2d:.2f} of 1)")

# %% slideshow={"slide_type": "-"}
levels = [0, 2, 4, 7, 9]
fig, axes = plt.subplots(1, len(levels) + 2, figsize=(2.2 * (len(levels) + 2), 2.6))
viz.plot_chain([x_start] + [snapshots[i] for i in levels], axes=axes[:-1], lim=3.2,
               times=[float("nan")] + [paper_sigmas[i].item() for i in levels], label="end of level σ")
axes[0].set_title("start (uniform)")
viz.plot_points(mix.sample(N_EVAL, gen), ax=axes[-1], lim=3.2, title="data", color="tab:orange")
axes[-1].set_xticks([])
axes[-1].set_yticks([])
plt.tight_layout()
viz.save_figure(fig, "ch02_annealed_2d.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The learned score at each level.** The widget shows the learned field s_θ(x, σ) (arrows, direction only) over
# its error ‖s_θ(x, σ) − ∇ log p_σ(x)‖ against the exact score of the noised mixture. At large σ the error is
# small everywhere in view; at small σ it is small only on the data — as for implicit score matching above, but
# annealed Langevin only ever asks the small-σ score *near* the data.

# %% slideshow={"slide_type": "-"}
def show_level(i, ax=None):
    sigma = paper_sigmas[i].item()
    err = sm.score_error_grid(lambda p: score2d(p, sigma), lambda p: sm.ve_score(mix, p, sigma), lim_e, n_e)
    ax = ax or plt.subplots(figsize=(4.2, 3.8))[1]
    im = error_panel(ax, err, "")
    with torch.no_grad():
        viz.plot_vector_field(lambda p: score2d(p, sigma), ax=ax, lim=lim_e, n=14, normalize=True, color="cyan")
    ax.set_title(f"learned, σ = {sigma:.3f}\nmedian error off the data {err[sparse].median():.2f}", fontsize=9)
    return im


# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def _level_widget(level=5):
    show_level(level)
    plt.show()


_ = widgets.interact(_level_widget, level=widgets.IntSlider(value=5, min=0, max=9, description="level i"))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
error_panel(axes[0], err_ism, f"implicit score matching, σ = 0\nmedian error off the data {err_ism[sparse].median():.2f}")
for ax, i in zip(axes[1:], (0, 5, 9)):
    im = show_level(i, ax)
plt.colorbar(im, ax=axes, fraction=0.015)
viz.save_figure(fig, "ch02_score_error.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Handwritten digits
#
# Same objective and sampler, on images: the course's `UNet` as the network (its time input gets t(σ)), sklearn's
# 8×8 digits in the `cpu` profile (MNIST in `gpu`). For the noise levels and the sampler we already use NCSNv2's
# rules (section 7 explains and ablates each):
# σ₁ = the largest distance between two training images, the number of levels L from the image dimension D, T
# Langevin steps per level as the budget allows, and ε from T.

# %% slideshow={"slide_type": "-"}
images = image_data()
x_img = images.train_x.to(device)
D_img = x_img[0].numel()
sigma_L = models.SIGMA_L  # 0.01
gamma_img = lg.ncsnv2_gamma(D_img)
sigma_1, L_img, img_sigmas = models.image_ladder(x_img)  # lg.max_pairwise_distance, lg.ncsnv2_num_levels, geometric
T_IMG = by_profile(smoke=2, cpu=20, gpu=20)
eps_img = lg.ncsnv2_step_size(T_IMG, gamma_img, sigma_L)
print(f"{images.name}: D = {D_img}, σ₁ = max distance = {sigma_1:.2f}, γ = {gamma_img:.3f}, L = {L_img} levels, "
      f"T = {T_IMG} steps per level, ε = {eps_img:.2e}")

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
# sm.NoiseConditionalScore(UNet) with the levels above, sm.ncsn_loss_fn(img_sigmas), 1,500 steps of 128 images
ncsn_img = models.train_ncsn_images(images)
print(f"trained in {ncsn_img.seconds:.0f} s (loaded from cache: {ncsn_img.loaded})")
score_img, score_img_raw = ncsn_img.model, ncsn_img.raw_model
_ = feature_classifier(images, progress=True)  # the classifier behind the FD ratio (trained once, then cached)
ax = viz.plot_loss(ncsn_img.losses, title=f"NCSN loss, {images.name}")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# We sample from uniform noise (as the paper does) and measure with the Fréchet distance in the feature space of
# the course's digit classifier, as a ratio to the real-vs-real floor (1.0 = indistinguishable at this sample
# size). Because Tweedie's formula works at *every* level, we can ask at the end of each level: how good is the
# chain as it is, and how good is its denoised version x + σ_i² s_θ(x, σ_i)? The last level (σ_L) gives the
# paper's "with and without the final denoising step".

# %% slideshow={"slide_type": "-"}
N_IMG = by_profile(smoke=64, cpu=300, gpu=2000)
shape = (N_IMG, *x_img.shape[1:])
last = L_img - 1
curve_levels = [i for i in range(L_img) if img_sigmas[i] <= 2.0]


def fd(x):
    return fd_ratio(x.clamp(-1, 1).cpu(), images, generator=0)["ratio"]


def sample_images(model, n_steps, eps, levels, seed=1):
    """Annealed Langevin from uniform noise; at the end of each level in ``levels`` keep the chain, its Tweedie
    denoised version and the FD ratio of both."""
    g, out = torch.Generator().manual_seed(seed), {}

    def at_level_end(i, k, x):
        if k == n_steps - 1 and i in levels:
            s = img_sigmas[i].item()
            out[i] = {"x": x.cpu(), "den": sm.tweedie_denoise(x, s, model(x, s)).cpu()}

    x = (torch.rand(shape, generator=g) * 2 - 1).to(device)
    lg.annealed_langevin(model, x, img_sigmas, eps=eps, n_steps=n_steps, generator=g, callback=at_level_end)
    for v in out.values():
        v["fd"], v["fd_den"] = fd(v["x"]), fd(v["den"])
    return out


def fd_of(runs, level, key):
    """The FD ratios of one level and key ("fd" or "fd_den") over k runs."""
    return [run[level][key] for run in runs]


SEEDS_IMG = (1, 2, 3)  # k = 3 sample sets; set j of every variant starts from the same uniform noise
t0 = time.perf_counter()
img_out = sample_images(score_img, T_IMG, eps_img, curve_levels)  # set 1, every level of the curve
print(f"{L_img} levels x {T_IMG} steps on {N_IMG} images (with the FD evaluations): {time.perf_counter() - t0:.0f} s")
stop = min(curve_levels, key=lambda i: img_out[i]["fd_den"])
img_ema = [img_out] + [sample_images(score_img, T_IMG, eps_img, {stop, last}, seed=s) for s in SEEDS_IMG[1:]]
print(f"FD ratio (mean ± sd over k = {len(img_ema)} sets of {N_IMG}) at the end of the ladder, σ_L = {sigma_L}: "
      f"without denoising {mean_sd(fd_of(img_ema, last, 'fd'))}, with {mean_sd(fd_of(img_ema, last, 'fd_den'))}")
print(f"best level of set 1 for stopping + denoising, σ = {img_sigmas[stop]:.3f}: "
      f"without denoising {mean_sd(fd_of(img_ema, stop, 'fd'))}, with {mean_sd(fd_of(img_ema, stop, 'fd_den'))}")
print("stop early and denoise vs the full ladder:",
      compare(fd_of(img_ema, stop, "fd_den"), fd_of(img_ema, last, "fd"), names=("stop + denoise", "full ladder"))["text"])

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.9), gridspec_kw={"width_ratios": [1.4, 1, 1, 1]})
sig_c = [img_sigmas[i].item() for i in curve_levels]
axes[0].plot(sig_c, [img_out[i]["fd"] for i in curve_levels], "o-", ms=3, label="chain x at the end of the level")
axes[0].plot(sig_c, [img_out[i]["fd_den"] for i in curve_levels], "o-", ms=3, label="x + σ² s_θ(x, σ)  (Tweedie)")
axes[0].set(xscale="log", yscale="log", xlabel="σ of the level where the chain stops", ylabel="FD ratio (1 = real)")
axes[0].invert_xaxis()
axes[0].axhline(1.0, color="0.5", lw=0.8, ls="--")
axes[0].legend(fontsize=8)
viz.show_images(img_out[stop]["x"][:48], nrow=8, ax=axes[1], title=f"chain at σ = {img_sigmas[stop]:.2f}")
viz.show_images(img_out[stop]["den"][:48], nrow=8, ax=axes[2], title="+ Tweedie denoising step")
viz.show_images(images.test_x[:48], nrow=8, ax=axes[3], title="real (test split)")
plt.tight_layout()
viz.save_figure(fig, "ch02_digits.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Read the curve from left to right (σ decreasing; it shows set 1). Without the denoising step the FD ratio falls as
# the noise left in the chain shrinks, and it levels off once that noise is below what the classifier can see. With
# the step, a chain stopped at an intermediate σ is as good as the full ladder within the noise of three sample sets
# (printed above: 1.75 ± 0.49 against 1.79 ± 0.17, "within noise"): the last levels cost most of the steps (in the
# paper's recipe too) and add nothing measurable here. The "best level" is chosen on set 1 and on the same test
# split the FD uses, so that comparison is slightly optimistic.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. NCSNv2's techniques, measured one at a time
#
# NCSN's recipe was tuned for 32×32 images and broke above them. NCSNv2 (Song & Ermon 2020) replaces each hand-set
# constant by a rule derived on a model simple enough to solve:
#
# - **Technique 1 (σ₁).** With the empirical data as a mixture of N(xᵢ, σ₁² I), a chain in component i feels
#   component j with weight at most ½ exp(−‖xᵢ − xⱼ‖²/(8σ₁²)) (their Proposition 1). To move between any two
#   training points, take σ₁ as large as the **maximum pairwise distance**.
# - **Technique 2 (the ladder).** For a one-point data set p_σ = N(0, σ² I_D), whose radius concentrates at
#   √D σ with spread σ/√2, consecutive levels σ_{i−1} = γ σ_i should overlap: the mass C that level i puts inside
#   level i−1's 3-standard-deviation shell is
#   $$C = \Phi\big(\sqrt{2D}(\gamma-1)+3\gamma\big) - \Phi\big(\sqrt{2D}(\gamma-1)-3\gamma\big) \approx 0.5 ,$$
#   which fixes γ — a geometric sequence — and the number of levels L.
# - **Technique 3 (conditioning)** s_θ(x, σ) = s_θ(x)/σ, used throughout this chapter.
# - **Technique 4 (ε and T).** Choose T as large as the budget allows, then ε so that for the one-point model the
#   variance after T steps at a level equals that level's σ_i² (formula in `utils.lessons.ch02_langevin.variance_ratio`).
# - **Technique 5 (EMA)** of the weights with momentum 0.999 (`TrainResult.model`; `raw_model` is without).
#
# Two formulas first, checked numerically within five Monte Carlo standard errors: C(γ) against the fraction of
# 3000 sampled radii in D = 3072 (CIFAR-10) that land in the shell, and the variance after T = 5 steps (at the
# digits' γ, D = 64) against a simulation of 100,000 chains. The nearest wrong answers: √D(γ − 1) where √(2D)(γ − 1)
# belongs (a radius spread σ instead of σ/√2), and NCSNv2's step ε′ = ε/2 read as ours.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
gam = lg.ncsnv2_gamma(3072)
phi = lambda u: 0.5 * (1 + math.erf(u / math.sqrt(2)))  # noqa: E731 — the standard normal CDF
overlap_sqrt_d = lambda g, d: phi(math.sqrt(d) * (g - 1) + 3 * g) - phi(math.sqrt(d) * (g - 1) - 3 * g)  # noqa: E731
overlap_check = lambda c: overlap_matches_simulation(c, gam, 3072, generator=torch.Generator().manual_seed(6))  # noqa: E731
print(f"CIFAR-10 (D = 3072), γ = {gam:.4f}: C(γ) matches the fraction of level-i radii in level (i-1)'s shell:",
      overlap_check(lg.shell_overlap))
print("the check rejects √D(γ - 1) in place of √(2D)(γ - 1):", not overlap_check(overlap_sqrt_d))
gam_chk, T_chk = lg.ncsnv2_gamma(64), 5
eps_chk = lg.ncsnv2_step_size(T_chk, gam_chk, 0.01)


def variance_check(ratio):
    return variance_after_steps_matches(ratio, eps_chk, T_chk, gam_chk, 0.01, 0.2, generator=torch.Generator().manual_seed(7))


print("digits (D = 64), T = 5: variance after T steps matches variance_ratio:", variance_check(lg.variance_ratio))
print("the check rejects NCSNv2's ε' = ε/2 read as ours:",
      not variance_check(lambda e, t, g, s: lg.variance_ratio(e / 2, t, g, s)))
print(f"NCSNv2's CIFAR-10 ladder (σ₁ = 50, L = 232) has C = {lg.shell_overlap((50 / 0.01) ** (1 / 231), 3072):.2f}; "
      f"NCSN's (σ₁ = 1, L = 10) has C = {lg.shell_overlap(100 ** (1 / 9), 3072):.2f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Testbeds.** Techniques 1, 2 and 4 are about the *sampler*, so we isolate them with **exact** scores:
# - the mixture of NCSN's Figure 3, ⅕ N((−5, −5), I) + ⅘ N((5, 5), I), whose modes are 14 apart;
# - the 8×8 training digits themselves, smoothed: p_σ = (1/N) Σᵢ N(xᵢ, σ² I), whose score is exact
#   (`sm.empirical_ve_score`) — the model NCSNv2 uses for Technique 1. We report, like the paper's Figure 2, the
#   average pairwise distance of the samples relative to that of the data (diversity), and how far the class
#   frequencies of the nearest training images are from the truth (total variation, TV);
# - "Gaussian digits": one Gaussian per class fitted to the digits, a 64-dimensional mixture with exact scores
#   at every σ. Its samples are judged by the Fréchet distance in pixel space to exact samples, as a ratio to the
#   floor between two exact sample sets.
#
# EMA and the denoising step need a trained network: the models of sections 5 and 6.

# %% slideshow={"slide_type": "-"}
dig_x, dig_y = load_digits("train")
dig_ref = dig_x.reshape(-1, 64).double()
gm_sigma1 = lg.max_pairwise_distance(dig_x)
gamma_64 = lg.ncsnv2_gamma(64)
N_GM = by_profile(smoke=100, cpu=500, gpu=1000)
T_V2 = by_profile(smoke=2, cpu=5, gpu=5)  # NCSNv2-style budget: a few steps per level
eps_rule = lg.ncsnv2_step_size(T_V2, gamma_64, 0.01)
SEEDS_V2 = (9, 10, 11)  # k = 3 paired sets: set j of "before" and of "after" start from the same uniform noise


def ladder_run(score, sigma_1, L, T, eps, seed=9):
    """Annealed Langevin on 64-D points from uniform noise in [-1, 1]^64, σ_L = 0.01."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N_GM, 64, generator=g, dtype=torch.float64) * 2 - 1
    return lg.annealed_langevin(score, x, lg.geometric_sigmas(sigma_1, 0.01, L), eps=eps, n_steps=T, generator=g)


# Technique 1 on the smoothed training digits
emp_score = lambda p, s: sm.empirical_ve_score(dig_ref, p, s)  # noqa: E731
data_apd = torch.pdist(dig_ref[:N_GM]).mean().item()
true_freq = torch.bincount(dig_y, minlength=10).double() / len(dig_y)


def diversity(x):
    nearest = torch.cdist(x, dig_ref).argmin(1)
    freq = torch.bincount(dig_y[nearest], minlength=10).double() / x.shape[0]
    return torch.pdist(x).mean().item() / data_apd, 0.5 * (freq - true_freq).abs().sum().item()


t1_runs = {s1: [diversity(ladder_run(emp_score, s1, lg.ncsnv2_num_levels(s1, 0.01, 64), T_V2, eps_rule, seed))
                 for seed in SEEDS_V2] for s1 in (1.0, gm_sigma1)}

# Technique 2: the number of levels at a fixed budget of score evaluations (Gaussian digits)
gdig = sm.class_gaussian_mixture(dig_x, dig_y, jitter=0.05)
gm_ref, gm_ref2 = gdig.sample(N_GM, torch.Generator().manual_seed(7)), gdig.sample(N_GM, torch.Generator().manual_seed(8))
gm_floor = frechet_distance(gm_ref, gm_ref2)
gm_score = lambda p, s: sm.ve_score(gdig, p, s)  # noqa: E731
L_gm = lg.ncsnv2_num_levels(gm_sigma1, 0.01, 64)
budget = L_gm * T_V2
t2_fd = {}
for L in (5, 10, L_gm, round(2.5 * L_gm)):
    T = max(1, round(budget / L))
    gam = (gm_sigma1 / 0.01) ** (1 / (L - 1))
    t2_fd[L] = [frechet_distance(ladder_run(gm_score, gm_sigma1, L, T, lg.ncsnv2_step_size(T, gam, 0.01), seed), gm_ref)
                / gm_floor for seed in SEEDS_V2]
print(f"Gaussian digits, {budget} score evaluations, ε by Technique 4 (Technique 2 says L = {L_gm}); "
      f"pixel FD ratio, mean ± sd over k = {len(SEEDS_V2)} sets of {N_GM}:")
for L, v in t2_fd.items():
    print(f"  L = {L:3d} levels x T = {max(1, round(budget / L)):3d} steps: {mean_sd(v)}")
print("  Technique 2's L vs the best other L of the sweep:",
      compare(t2_fd[L_gm], min((v for L, v in t2_fd.items() if L != L_gm), key=np.mean), names=(f"L = {L_gm}", "best other"))["verdict"])

# Technique 4: ε for T steps per level
t4_fd = {eps: [frechet_distance(ladder_run(gm_score, gm_sigma1, L_gm, T_V2, eps, seed), gm_ref) / gm_floor
               for seed in SEEDS_V2] for eps in (2e-5, eps_rule)}

# %% slideshow={"slide_type": "-"}
fig3 = GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], stds=[1.0, 1.0], weights=[0.2, 0.8])  # NCSN's Figure 3 data
sig_far = lg.max_pairwise_distance(fig3.sample(2000, torch.Generator().manual_seed(0)))


def far_mode_weight_error(sigma_1, seed):
    """|weight of the (−5, −5) mode − 0.2| after annealed Langevin from uniform noise in [−8, 8]²."""
    g = torch.Generator().manual_seed(seed)
    x_u = (torch.rand(N_EVAL, 2, generator=g, dtype=torch.float64) - 0.5) * 16
    out = lg.annealed_langevin(lambda p, s: sm.ve_score(fig3, p, s), x_u, lg.geometric_sigmas(sigma_1, 0.1, 10), eps=1e-3,
                               n_steps=by_profile(smoke=20, cpu=100, gpu=100), generator=g)
    return abs(lg.nearest_mode_fractions(out, fig3.means)[0].item() - 0.2)


w_t1 = {s1: [far_mode_weight_error(s1, seed) for seed in SEEDS_V2] for s1 in (1.0, sig_far)}

# samples for the EMA and T ablations with the trained networks (k = 3 sets each, paired with img_ema by seed)
img_raw = [sample_images(score_img_raw, T_IMG, eps_img, {stop, last}, seed=s) for s in SEEDS_IMG]
img_cheap = [sample_images(score_img, T_V2, lg.ncsnv2_step_size(T_V2, gamma_img, sigma_L), {stop, last}, seed=s)
             for s in SEEDS_IMG]
samples_raw = lg.annealed_langevin(score2d_raw, x_start, paper_sigmas, eps=2e-5, n_steps=T_2D, generator=torch.Generator().manual_seed(1))
K_2D = 4  # the 2-D sample sets split into k = 4 sets of N_EVAL/4 (set j of raw and EMA share their starting points)
ref_2d = mix.sample(N_EVAL, torch.Generator().manual_seed(12))
floor_k = sw_floor(mix.sample, N_EVAL // K_2D, repeats=5, generator=0)["mean"]


def sw_sets(x):
    """SW / floor of each of the K_2D parts of x against the matching part of ref_2d."""
    return [sliced_wasserstein(a, b, generator=1) / floor_k for a, b in zip(x.chunk(K_2D), ref_2d.chunk(K_2D))]

# %% slideshow={"slide_type": "subslide"}
stop_label = f"FD ratio (stop at σ = {img_sigmas[stop]:.2f})"
rows = [  # (technique, testbed, measure (lower is better), k scores before, k scores after)
    (f"T1 σ₁: 1 → {sig_far:.1f} (max dist.)", "NCSN Fig. 3 mixture, exact", "|small-mode weight - 0.2|",
     w_t1[1.0], w_t1[sig_far]),
    (f"T1 σ₁: 1 → {gm_sigma1:.1f} (max dist.)", "smoothed digits, exact", "|pairwise dist. / data's - 1|",
     [abs(r[0] - 1) for r in t1_runs[1.0]], [abs(r[0] - 1) for r in t1_runs[gm_sigma1]]),
    (f"T1 σ₁: 1 → {gm_sigma1:.1f} (max dist.)", "smoothed digits, exact", "class TV",
     [r[1] for r in t1_runs[1.0]], [r[1] for r in t1_runs[gm_sigma1]]),
    (f"T2 L: 10 → {L_gm} ({budget} calls)", "Gaussian digits, exact", "pixel FD ratio", t2_fd[10], t2_fd[L_gm]),
    (f"T4 ε (T = {T_V2}): 2e-5 → {eps_rule:.1e}", "Gaussian digits, exact", "pixel FD ratio", t4_fd[2e-5], t4_fd[eps_rule]),
    (f"T4 T: {T_V2} → {T_IMG} steps/level", f"{images.name}, learned", "FD ratio (end of ladder)",
     fd_of(img_cheap, last, "fd"), fd_of(img_ema, last, "fd")),
    ("T5 EMA: raw → EMA weights", "mixture 2-D, learned", f"SW / floor (n = {N_EVAL // K_2D})", sw_sets(samples_raw),
     sw_sets(samples_2d)),
    ("T5 EMA: raw → EMA weights", f"{images.name}, learned", "FD ratio (end of ladder)", fd_of(img_raw, last, "fd"),
     fd_of(img_ema, last, "fd")),
    ("denoising step: off → on", f"{images.name}, learned", f"FD ratio (end, σ = {sigma_L})", fd_of(img_ema, last, "fd"),
     fd_of(img_ema, last, "fd_den")),
    ("denoising step: off → on", f"{images.name}, learned", stop_label, fd_of(img_ema, stop, "fd"),
     fd_of(img_ema, stop, "fd_den")),
    ("  same, raw weights", f"{images.name}, learned", stop_label, fd_of(img_raw, stop, "fd"), fd_of(img_raw, stop, "fd_den")),
    (f"  same, T = {T_V2}", f"{images.name}, learned", stop_label, fd_of(img_cheap, stop, "fd"),
     fd_of(img_cheap, stop, "fd_den")),
]
print("mean ± sd over k paired sets; verdict of utils.eval.metrics.compare (difference beyond 2 s.e.)")
print(f"{'technique':32s} {'testbed':27s} {'measure':30s} {'before':>15s} {'after':>15s}  verdict")
for name, bed, what, before, after in rows:
    c = compare(after, before, names=("after", "before"))
    print(f"{name:32s} {bed:27s} {what:30s} {c['mean_b']:7.3f} ± {c['sd_b']:5.3f} {c['mean_a']:7.3f} ± {c['sd_a']:5.3f}  "
          f"{c['verdict']} (k = {c['k']})")

# %% [markdown] slideshow={"slide_type": "-"}
# How to read the table (the numbers are the ones printed above, in the stored `cpu` run; every row is k = 3 or 4
# paired sets, and "after better" means the difference exceeds twice its paired standard error):
# - **σ₁** decides whether the sampler can move between modes at all. With σ₁ = 1 the chains on the Figure 3
#   mixture keep the basin fractions of their uniform start (weight error 0.28); with σ₁ = the maximum distance they
#   find the 0.2 / 0.8 weights (error 0.04). On the 8×8 digits σ₁ = 1 already gives the data's diversity (the
#   pairwise-distance ratio is within 1 % of 1 either way, a difference within noise), while the larger σ₁ halves
#   the error of the class frequencies (TV 0.13 → 0.06, beyond noise). The digits' mean pairwise distance is about 6,
#   not far below the σ₁ = 9.5 of the rule, and a uniform start is not far from the data.
# - **The ladder** matters at a fixed budget: too few levels and each level starts far from its own
#   equilibrium; Technique 2's L = 23 is the best of the sweep above (pixel FD ratio 1.8 against 2.1 for the next
#   best, L = 58, beyond noise).
# - **ε** with only a few steps per level: NCSN's ε = 2·10⁻⁵ moves the chain too little (pixel FD ratio 9.2);
#   Technique 4's ε lets each level equilibrate (1.8). With the learned network, more steps per level also help
#   (FD ratio 2.9 → 1.8 from T = 5 to T = 20, beyond the noise of three sets).
# - **EMA** is the largest single effect on the learned models (digits: FD ratio 9.2 → 1.8; 2-D: SW ratio
#   2.5 → 1.2): with a constant learning rate the last weights are noisy, and their scores are bad enough that
#   denoising does not rescue them (8.8 → 9.0, within noise).
# - **The denoising step** removes the noise of the level where the chain stops. At σ_L = 0.01 that noise is below
#   what an 8×8 classifier sees, and the step changes nothing (within noise); stopped earlier, at σ = 0.23, the
#   chain is noisy and Tweedie's step is a clear improvement (2.2 → 1.75, beyond noise), which brings it level with
#   the full ladder (1.75 against 1.79, within noise; section 6). On CIFAR-10 the Inception features *do* see σ = 0.01 noise,
#   which is why NCSNv2 gains so much from it (next section).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Reproduce the papers
#
# **NCSN Figure 3** (Song & Ermon 2019, Section 3.2.2): data ⅕ N((−5, −5), I) + ⅘ N((5, 5), I), samples by exact
# sampling, by Langevin dynamics with the exact score, and by annealed Langevin dynamics with the exact scores.
# The paper shows the picture: Langevin gets the relative weights wrong, annealed Langevin recovers them. We use
# the same mixture, uniform starts in [−8, 8]², Langevin with α = 0.1 for 1000 steps, and annealed Langevin
# with 10 levels from σ = 20 to 1, T = 100, ε = 0.1 — and count.

# %% slideshow={"slide_type": "-"}
n3 = by_profile(smoke=500, cpu=2000, gpu=4000)
g3 = torch.Generator().manual_seed(11)
x3 = (torch.rand(n3, 2, generator=g3, dtype=torch.float64) - 0.5) * 16
exact3 = fig3.sample(n3, g3)
lang3 = lg.langevin(lambda p: sm.ve_score(fig3, p, 0.0), x3, 0.1, by_profile(smoke=100, cpu=1000, gpu=1000), generator=g3)
ann3 = lg.annealed_langevin(lambda p, s: sm.ve_score(fig3, p, s), x3, lg.geometric_sigmas(20.0, 1.0, 10), eps=0.1,
                            n_steps=by_profile(smoke=20, cpu=100, gpu=100), generator=g3)
K3 = 4  # the n3 chains split into k = 4 sets (set j of Langevin and of annealed Langevin share their starts)
w3_sets = {name: [lg.nearest_mode_fractions(part, fig3.means)[0].item() for part in v.chunk(K3)] for name, v in
           [("exact", exact3), ("Langevin", lang3), ("annealed Langevin", ann3)]}
w3 = {name: float(np.mean(ws)) for name, ws in w3_sets.items()}
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
for ax, (name, v) in zip(axes, [("exact", exact3), ("Langevin", lang3), ("annealed Langevin", ann3)]):
    viz.plot_points(v, ax=ax, lim=(-10, 10), s=2)
    ax.set_title(f"{name}\nweight of the (−5, −5) mode = {w3[name]:.2f}", fontsize=10)
plt.tight_layout()
viz.save_figure(fig, "ch02_ncsn_fig3.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "-"}
weight_error = {name: [abs(w - 0.2) for w in ws] for name, ws in w3_sets.items()}
c_lang = compare(weight_error["Langevin"], weight_error["exact"], names=("Langevin", "exact"))
c_ann = compare(weight_error["annealed Langevin"], weight_error["Langevin"], names=("annealed Langevin", "Langevin"))
print(f"NCSN Figure 3, weight of the (-5,-5) mode (true 0.2), mean ± sd over k = {K3} sets of {n3 // K3} chains; "
      "the paper shows it as a picture only")
for name, ws in w3_sets.items():
    print(f"  {name:18s} {mean_sd(ws)}")
print("  |weight - 0.2|:", c_lang["text"])
print("  |weight - 0.2|:", c_ann["text"])
fig3_ok = c_lang["verdict"] == "exact better" and c_ann["verdict"] == "annealed Langevin better"
print("  Figure 3 (Langevin gets the weights wrong, annealed Langevin recovers them) reproduces:", "yes" if fig3_ok else "no")
print()
c_end = compare(fd_of(img_ema, last, "fd_den"), fd_of(img_ema, last, "fd"), names=("with", "without"))
c_stop = compare(fd_of(img_ema, stop, "fd_den"), fd_of(img_ema, stop, "fd"), names=("with", "without"))
print("NCSNv2 Table 1 (CIFAR-10 FID, 50k samples, lower is better)   vs   this chapter (FD ratio, 1.0 = real)")
print("  NCSN    without denoising 25.32   with 29.8")
print("  NCSNv2  without denoising 31.75   with 10.87")
print(f"  ours, {images.name}, chain to σ_L = {sigma_L}:  {c_end['text']}")
print(f"  ours, {images.name}, stopped at σ = {img_sigmas[stop]:.2f}: {c_stop['text']}")
print("  NCSNv2's gain from the denoising step at the end of the ladder reproduces:",
      "yes" if c_end["verdict"] == "with better" else "no")

# %% [markdown] slideshow={"slide_type": "-"}
# **What matches and what does not.** Figure 3's qualitative claim reproduces, with numbers: plain Langevin
# reports roughly the basin fractions of its uniform start for the (−5, −5) mode (0.48), annealed Langevin about the
# true 0.2 (0.22 ± 0.02; exact samples 0.19 ± 0.01), and the comparison of the weight errors is beyond noise (the
# annealed samples also carry the N(0, σ_L² = 1) noise of their last level, hence the wider clouds).
# NCSNv2's Table 1 shows the denoising step turning FID 31.75 into 10.87 on CIFAR-10; at the end of our ladder the
# step changes nothing (1.79 → 1.79, within noise), so that result does not reproduce here; our digits show the
# effect only when the chain stops at a noise level the classifier can see (the "stopped" row, 2.19 → 1.75). The absolute
# numbers cannot be compared: FID on 32×32 colour images with Inception features versus a Fréchet ratio on 8×8
# digits with a small classifier, and models trained for minutes on a CPU instead of days on GPUs. Note also that
# in NCSNv2's table the *original* NCSN gets *worse* with denoising (25.32 → 29.8): the step helps only when the
# chain has actually reached the last level's distribution.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Looking ahead: annealed Langevin is a discretised SDE
#
# Noising with σ rising continuously from σ_L to σ₁ is the *variance-exploding* (VE) SDE dx = √(dσ²(t)/dt) dW of
# chapter 05, with σ(t) = σ_L (σ₁/σ_L)^t — NCSN's geometric ladder sampled at L points. Its reverse-time SDE needs
# exactly the score ∇ log p_{σ(t)} that an NCSN learns. Annealed Langevin dynamics only runs *corrector* steps
# (Langevin at a fixed σ) and jumps from level to level; chapter 05 adds *predictor* steps that follow the reverse
# SDE between levels (the predictor–corrector sampler), and a deterministic probability-flow ODE with the same
# marginals. And DDPM (chapter 03) turns out to be the variance-*preserving* sibling: its ε-network is a score
# network in disguise, s_θ = −ε̂/σ_t — Tweedie's formula again.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Exercises
#
# Each exercise has a cell for your code and a collapsed reference solution that runs the checker.
#
# **Exercise 1 — the score of a Gaussian.** Write `gaussian_score(x, mean, cov)` for points x (B, D): the score
# ∇ₓ log N(x; mean, cov). Avoid forming the inverse explicitly (`torch.linalg.solve`).

# %% slideshow={"slide_type": "-"}
def my_gaussian_score(x, mean, cov):
    ...  # your code


# ch02.check_gaussian_score(my_gaussian_score)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def gaussian_score(x, mean, cov):
    return -torch.linalg.solve(cov, (x - mean).T).T


ch02.check_gaussian_score(gaussian_score)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — the DSM target.** Write `dsm_target(x_noisy, x_clean, sigma)`: the vector that denoising score
# matching regresses s_θ(x̃) onto, i.e. the score of the noising kernel N(x̃; x, σ² I) at x̃.

# %% slideshow={"slide_type": "-"}
def my_dsm_target(x_noisy, x_clean, sigma):
    ...  # your code


# ch02.check_dsm_target(my_dsm_target)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def dsm_target(x_noisy, x_clean, sigma):
    return -(x_noisy - x_clean) / sigma**2


ch02.check_dsm_target(dsm_target)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — Tweedie's denoiser.** Write `tweedie(x_noisy, sigma, score)` that returns E[x | x̃] from the
# score of the noised density at x̃. The checker compares it with the exact posterior mean of the Gaussian mixture.

# %% slideshow={"slide_type": "-"}
def my_tweedie(x_noisy, sigma, score):
    ...  # your code


# ch02.check_tweedie(my_tweedie)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def tweedie(x_noisy, sigma, score):
    return x_noisy + sigma**2 * score


ch02.check_tweedie(tweedie)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 4 — the price of a finite step.** Langevin with step α on N(0, v) does not sample N(0, v) exactly.
# Write `langevin_variance(step_size, var)`: the variance the chain settles at (section 2 has the idea; redo it
# without looking). What happens as α → 4v?

# %% slideshow={"slide_type": "-"}
def my_langevin_variance(step_size, var):
    ...  # your code


# ch02.check_langevin_variance(my_langevin_variance)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def langevin_variance(step_size, var):
    r = 1 - step_size / (2 * var)  # one step: x ← r x + √α z
    return step_size / (1 - r**2)  # fixed point of V ← r² V + α; blows up as α → 4v (|r| → 1)


ch02.check_langevin_variance(langevin_variance)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - The score ∇ log p ignores the normalising constant; Langevin dynamics samples p from the score alone, with an
#   O(α) bias; SGLD (Welling & Teh 2011) runs it on minibatch gradients, so that it scales to large data sets.
# - With only the score, separated modes are invisible to each other: Langevin gets the weights wrong and does not
#   mix (measured in section 2).
# - Score matching learns the score from samples: Hyvärinen's implicit objective needs a Jacobian trace; Vincent's
#   denoising objective is a plain regression onto −z/σ, and Tweedie's formula makes the learned score a denoiser.
# - Noise fills the low-density regions where scores are otherwise wrong; a noise-conditional network learns a
#   ladder of noise levels, and annealed Langevin walks down it.
# - NCSNv2 derives σ₁, the ladder, ε and T from the data, adds EMA and a final Tweedie step; each was measured here.
#
# **Further reading.** Song et al., *Sliced Score Matching* (UAI 2019) — score matching without the Jacobian and
# without noise; Jolicoeur-Martineau et al., *Adversarial Score Matching and Improved Sampling for Image
# Generation* (ICLR 2021) — where the denoising step comes from; Kadkhodaie & Simoncelli (NeurIPS 2021) —
# sampling with denoisers; Yang Song's blog post *Generative Modeling by Estimating Gradients of the Data
# Distribution* (2021).
#
# **Next: chapter 03 (DDPM)** keeps the ladder of noise levels but makes it a Markov chain that *shrinks* the data
# as it adds noise (variance preserving), learns ε instead of the score — the same thing, by Tweedie — and
# replaces the many Langevin steps per level by one ancestral step per level.
