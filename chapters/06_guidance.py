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
# # 06 — Guidance: classifier guidance and classifier-free guidance
#
# *Diffusion models, from first principles* — chapter 06.
#
# **The papers.**
# - Prafulla Dhariwal and Alex Nichol, *Diffusion Models Beat GANs on Image Synthesis*, NeurIPS 2021,
#   [arXiv:2105.05233](https://arxiv.org/abs/2105.05233) (ADM) — classifier guidance, Algorithms 1 and 2.
# - Jonathan Ho and Tim Salimans, *Classifier-Free Diffusion Guidance*, NeurIPS 2021 Workshop on Deep Generative
#   Models, [arXiv:2207.12598](https://arxiv.org/abs/2207.12598) (2022) — classifier-free guidance, Algorithms 1–2
#   and Table 1.
#
# **What you will learn**
# - conditional generation as Bayes' rule for scores: ∇ log p_t(x | y) = ∇ log p_t(x) + ∇ log p_t(y | x);
# - classifier guidance: a classifier trained on *noised* images steers an unconditional model; the scale s and
#   what it does — and, measured on an exact testbed, what guided sampling does **not** do (it does not sample
#   p(x) p(y | x)^s unless you add corrector steps);
# - classifier-free guidance: one network, the label dropped during training, ε̃ = (1 + w) ε(x, t, y) − w ε(x, t, ∅);
#   why it *is* classifier guidance with an implicit classifier, and how `guidance_scale` in diffusers relates to w;
# - the fidelity–diversity trade-off of the CFG paper's Table 1, reproduced on digits, side by side with the
#   published ImageNet 64×64 numbers.
#
# **Prerequisites**: chapter 03 (DDPM: the ε-network, ancestral sampling), chapter 04 (DDIM) and chapter 02 or 05
# (scores: score = −ε/σ_t, Langevin correctors).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where this sits
#
# This chapter closes the core of the course map. Chapters 01–05 learn **p(x)** and sample it; here we learn to
# sample **p(x | y)** and to *sharpen* it. Everything is a wrapper around the same trained denoisers and the same
# samplers (DDPM, DDIM, predictor–corrector): guidance only changes the ε (equivalently, the score) that a
# sampler is given. What comes after — text-to-image models such as GLIDE, Imagen and Stable Diffusion — is this
# chapter with a text encoder in place of the class label.

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.lessons import ch06_checks as ck
from utils.lessons import ch06_guidance as gt
from utils import samplers, viz
from utils.config import by_profile, start_chapter
from utils.course_map import show_course_map
from utils.data import analytic_mixture, image_data
from utils.exercises import ch06
from utils.forward import posterior_coefs
from utils.denoiser import PredictionModel
from utils.guidance import ClassifierFree, ClassifierGuided, with_x0
from utils.data.mixture import GaussianMixture
from utils.eval.metrics import mean_sd
from utils.schedules import cosine, ddpm_linear
from utils.training import diffusion_loss_fn
from utils.training.zoo import digits_ddpm

profile, device, gen = start_chapter(seed=0)

# %% slideshow={"slide_type": "-"}
show_course_map("06")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Conditional diffusion is Bayes' rule for scores
#
# We want samples of one class y: p(x | y). The forward process does not look at y, so every noise level has its
# own conditional p_t(x | y) = ∫ q(x_t | x_0) p(x_0 | y) dx_0, and Bayes' rule at that level reads
#
# $$p_t(x \mid y) = \frac{p_t(y \mid x)\, p_t(x)}{p(y)} .$$
#
# Take the log and the gradient in x: p(y) does not depend on x and disappears,
#
# $$\nabla_x \log p_t(x \mid y) = \nabla_x \log p_t(x) + \nabla_x \log p_t(y \mid x).$$
#
# Two things to notice.
# 1. The classifier that appears is **p_t(y | x_t)**, the probability of the label given a *noisy* image:
#    p_t(y | x_t) = ∫ p(y | x_0) q(x_0 | x_t) dx_0. An ordinary classifier trained on clean images is the t = 0
#    member of this family only; this is why ADM trains its classifier on noised images (Section 4 of the paper).
# 2. In ε units (score = −ε/σ_t, chapter 03) the same identity reads
#    ε(x, t, y) = ε(x, t) − σ_t ∇ₓ log p_t(y | x).
#
# **An exact testbed.** The course's analytic Gaussian mixture (three components) gets *soft labels*: component j
# carries label y = 1 with probability p(y = 1 | j) ∈ {0.1, 0.5, 0.8}. Components stay Gaussian under noising, so
# with the responsibilities r_j,t(x) = p(j | x_t = x) everything is exact at every t:
# p_t(y | x) = Σ_j r_j,t(x) p(y | j), and p_t(x | y) is the same mixture with weights ∝ w_j p(y | j).
# `utils.lessons.ch06_guidance.LabelledMixture` implements this. We check Bayes' rule for scores with autograd
# (`utils.lessons.ch06_checks.bayes_rule_for_scores`): the left side is the gradient of the claimed log p_t(x | y),
# the right side takes the classifier by the *other* route, log Σ_j r_j,t(x) p(y | j), so a wrong conditional model
# — below, one that forgets the prior weights w_j — is caught.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
sch_mix = cosine(1000)
label_probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)  # rows: p(y | component j)
lm = gt.LabelledMixture(analytic_mixture(), label_probs)
x = 1.5 * torch.randn(400, 2, generator=gen, dtype=torch.float64)


def forgets_the_prior(y):
    """A self-consistent but wrong p(x | y): the same components with weights ∝ p(y | j), not w_j p(y | j)."""
    w = label_probs[:, y]
    return GaussianMixture(lm.mixture.means, weights=w / w.sum(), covs=lm.mixture.covs)


print("∇log p_t(x | y) = ∇log p_t(x) + ∇log p_t(y | x) at t = 0.05, 0.3, 0.7:",
      ck.bayes_rule_for_scores(lm.conditional, lm, sch_mix, x))
print("the check rejects p(x | y) with weights ∝ p(y | j) (the prior w_j forgotten):",
      not ck.bayes_rule_for_scores(forgets_the_prior, lm, sch_mix, x))
print("p(y) =", lm.prior.numpy().round(2).tolist())

# %% [markdown] slideshow={"slide_type": "subslide"}
# What the noisy classifier looks like: p_t(y = 1 | x) over the plane. At small t it is sharp and follows the
# components; as t grows, the components blur into one another and the classifier flattens towards the prior
# p(y = 1) = 0.57 — its gradient, and with it the guidance, fades at high noise.

# %% slideshow={"slide_type": "-"}
lim = 3.2
g1 = torch.linspace(-lim, lim, 121, dtype=torch.float64)
gx, gy = torch.meshgrid(g1, g1, indexing="xy")
grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
for ax, t in zip(axes, (0.0, 0.2, 0.5, 0.8)):
    p1 = lm.label_posterior_t(grid, sch_mix, t)[:, 1].reshape(121, 121)
    im = ax.contourf(gx, gy, p1, levels=np.linspace(0, 1, 11), cmap="coolwarm", vmin=0, vmax=1)
    ax.contour(gx, gy, lm.mixture.log_prob_t(grid, sch_mix, t).reshape(121, 121), levels=6, colors="k",
               linewidths=0.5, alpha=0.5)
    ax.set_title(f"p_t(y=1 | x), t = {t}")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
viz.save_figure(fig, "ch06_noisy_classifier.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Classifier guidance (Dhariwal & Nichol 2021)
#
# Take an *unconditional* model ε_θ(x_t, t) and a noise-aware classifier p_φ(y | x_t, t), and scale the classifier
# term by s ≥ 0:
#
# $$\nabla_x \log p_t(x) + s\, \nabla_x \log p_\phi(y \mid x_t) = \nabla_x \log \Big[\tfrac{1}{Z_t}\, p_t(x)\, p_\phi(y \mid x_t)^s\Big].$$
#
# s = 1 is Bayes' rule; s > 1 raises the classifier to a power — p(y | x)^s is *sharper*, so the guided density
# favours images the classifier is sure about (ADM, Section 4.3). In ε units:
#
# $$\hat\varepsilon_{\text{guided}} = \varepsilon_\theta(x_t, t) - s\, \sigma_t\, \nabla_x \log p_\phi(y \mid x_t, t).$$
#
# The paper gives two samplers. **Algorithm 1** (ancestral): shift the mean of each DDPM step by s Σ ∇ log p_φ,
# x_{t−1} ~ N(μ + s Σ ∇ₓ log p_φ(y | x_t), Σ). **Algorithm 2** (DDIM): replace ε̂ by the guided ε̂ above and take a
# plain DDIM step. The notation, once:
#
# | ADM paper | this course | note |
# |---|---|---|
# | step t ∈ {1, …, T} | t = n/T ∈ (0, 1] | a respaced grid visits a subset of the n |
# | √ᾱ_t , √(1 − ᾱ_t) | `alpha(t)`, `sigma(t)` | |
# | Σ = Σ_θ(x_t, t) | posterior variance β̃ (`posterior_coefs`) | our models have fixed variances |
# | s | `scale` | |
# | p_φ(y \| x_t) | `classifier(x, t)` → logits | |
#
# Algorithm 2, written out on a time grid `ts` (η = 0):

# %% slideshow={"slide_type": "-"}
def classifier_guided_ddim(denoiser, classifier, scale, x, ts, y):
    """Dhariwal & Nichol 2021, Algorithm 2: DDIM with a classifier-guided ε̂."""
    sch = denoiser.schedule
    for t, t_next in zip(ts[:-1], ts[1:]):
        with torch.enable_grad():  # ∇ₓ log p_φ(y | x_t)
            xg = x.detach().requires_grad_(True)
            log_p = classifier(xg, t.expand(x.shape[0])).log_softmax(1).gather(1, y[:, None]).sum()
            (grad,) = torch.autograd.grad(log_p, xg)
        eps_hat = denoiser.eps(x, t) - scale * sch.sigma(t) * grad  # ε̂ − s √(1 − ᾱ_t) ∇ log p_φ
        x0_hat = (x - sch.sigma(t) * eps_hat) / sch.alpha(t)
        x = sch.alpha(t_next) * x0_hat + sch.sigma(t_next) * eps_hat  # x_{t−1}
    return x


# %% [markdown] slideshow={"slide_type": "-"}
# On the exact testbed (exact unconditional denoiser, exact classifier p_t(y | x)), it must agree with the
# library: `ClassifierGuided(denoiser, classifier, scale)` is a denoiser whose ε is the guided one, and
# `samplers.sample_ddim` is DDIM.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
den_mix, clf_mix = lm.denoiser(sch_mix), lm.classifier(sch_mix)
x1 = torch.randn(256, 2, generator=gen, dtype=torch.float64)
y1 = torch.ones(256, dtype=torch.long)
ts = samplers.time_grid(50).double()
ours = classifier_guided_ddim(den_mix, clf_mix, 3.0, x1, ts, y1)
library = samplers.sample_ddim(ClassifierGuided(den_mix, clf_mix, 3.0), x1, ts, y=y1)
print("Algorithm 2 written out = sample_ddim(ClassifierGuided(...)):", torch.allclose(ours, library, rtol=1e-10, atol=1e-12))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Algorithm 1 versus the ε form.** The library guides ancestral sampling the same way as DDIM: it hands the guided
# ε̂ to the DDPM step (`sample_ddpm` is DDIM with η = 1). Is that Algorithm 1? Write σ_s, ᾱ_s for σ and ᾱ at the
# next time t_next (a subscript s is a time here, not the scale) and a = ᾱ_t/ᾱ_s for the step's "1 − β". Put ε̂ − sσ_t g (g = ∇ log p_φ) into the DDPM mean
# μ = (x_t − (1 − a)/σ_t · ε̂)/√a: the mean moves by s g (1 − a)/√a. Algorithm 1 moves it by s Σ g, and with
# Σ = β̃ = (1 − a) σ_s²/σ_t² that is s g (1 − a) σ_s²/σ_t². The two shifts differ by the factor
#
# $$\frac{\text{Algorithm 1}}{\varepsilon\text{ form}} = \sqrt{a}\,\frac{\sigma_s^2}{\sigma_t^2}.$$
#
# One step of each, with the same noise z, on the exact testbed (`utils.lessons.ch06_checks.shift_factor_holds` takes
# the claimed factor; the nearest wrong answer drops the √a):

# %% slideshow={"slide_type": "-"}
def classifier_guided_ancestral_step(denoiser, classifier, scale, x, t, t_next, y, z):
    """Dhariwal & Nichol 2021, Algorithm 1, one step: x_{t−1} ~ N(μ + s Σ ∇ₓ log p_φ(y | x_t), Σ)."""
    c_x0, c_xt, var = posterior_coefs(denoiser.schedule, t_next, t)  # μ = c_x0 x̂_0 + c_xt x_t, Σ = β̃
    mean = c_x0 * denoiser.x0(x, t) + c_xt * x
    grad = ClassifierGuided(denoiser, classifier, 1.0).log_prob_grad(x, t, y)
    return mean + scale * var * grad + var.sqrt() * z


def shift_factor(schedule, t, t_next):
    """Algorithm 1's mean shift over the ε form's: √a σ_s²/σ_t², a = ᾱ_t/ᾱ_s."""
    a = schedule.alpha_bar(t) / schedule.alpha_bar(t_next)
    return a.sqrt() * schedule.sigma(t_next) ** 2 / schedule.sigma(t) ** 2


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
STEPS_CHECKED = (5, 25, 45)
print("Algorithm 1's mean shift = √a σ_s²/σ_t² × the ε form's shift:",
      ck.shift_factor_holds(shift_factor, den_mix, clf_mix, x1, y1, ts, STEPS_CHECKED,
                            alg1_step=classifier_guided_ancestral_step))
print("the check rejects σ_s²/σ_t² (no √a):",
      not ck.shift_factor_holds(lambda sch, t, t_next: sch.sigma(t_next) ** 2 / sch.sigma(t) ** 2, den_mix, clf_mix,
                                x1, y1, ts, STEPS_CHECKED, alg1_step=classifier_guided_ancestral_step))
print("the check rejects 1 (the two forms the same):",
      not ck.shift_factor_holds(lambda sch, t, t_next: 1.0, den_mix, clf_mix, x1, y1, ts, STEPS_CHECKED,
                                alg1_step=classifier_guided_ancestral_step))

# %% [markdown] slideshow={"slide_type": "-"}
# How big is the factor where it matters? The digits models of sections 5–7 use DDPM's linear schedule (T = 1000) and
# are sampled on 25 steps. On that grid, step by step (from t = 1):

# %% slideshow={"slide_type": "-"}
sch_lin, ts_lin = ddpm_linear(1000), samplers.time_grid(25, T=1000).double()
factor_lin = torch.stack([shift_factor(sch_lin, t, t_next) for t, t_next in zip(ts_lin[:-1], ts_lin[1:])])
print("factor on each of the 25 steps:", np.round(factor_lin.numpy(), 2).tolist())
q = torch.quantile(factor_lin[:-1], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
print("steps 1–24: min {:.2f}, quartiles {:.2f} / {:.2f} / {:.2f}, max {:.2f}".format(*q.tolist()))
first = factor_lin[:20]
print(f"steps 1–20: {first.min():.2f} to {first.max():.2f}, i.e. at the same s the ε form moves the mean "
      f"{1 / first.max():.2f}× to {1 / first.min():.2f}× as far as Algorithm 1 (median over steps 1–24: "
      f"{1 / factor_lin[:-1].median():.2f}×)")
# the last step with ADM's clipped variance: Σ = β̃ of the step before (improved-diffusion's first-step clip)
beta_tilde_24 = posterior_coefs(sch_lin, ts_lin[-2], ts_lin[-3])[2]
a_25 = sch_lin.alpha_bar(ts_lin[-2])
print(f"last step: {float(factor_lin[-1]):.2f} with Σ = β̃ = 0; with the clipped Σ = β̃ of step 24: "
      f"{float(beta_tilde_24 * a_25.sqrt() / (1 - a_25)):.2f}")

# %% [markdown] slideshow={"slide_type": "-"}
# So the two forms do **not** differ only at the end. On this grid the factor is 0.67–0.79 over the first 20 steps
# (median 0.73 over steps 1–24) and falls to 0.64, 0.57, 0.46 and 0.28 on steps 21–24: at the same s the ε form
# moves the mean 1.26–1.49 times as far as Algorithm 1 at *every* step, and more on the last few. A scale s in the
# library's ancestral sampler therefore acts like roughly 1.3–1.5 s in ADM's Algorithm 1, and ancestral scales are
# not comparable with Algorithm 1's without that conversion. (For DDIM the ε form *is* Algorithm 2, so the DDIM
# scales of section 6 are ADM's Algorithm 2 scales.) The factor tends to 1 only when the steps are small (a → 1,
# σ_s → σ_t).
# The 0 on the last step is not a property of Algorithm 1 but of Σ = β̃, which is exactly 0 when t_next = 0. ADM's
# models learn Σ, interpolating in log-variance between β and a β̃ whose first entry is *clipped* to the second
# (`posterior_log_variance_clipped` in their `gaussian_diffusion.py`), so their last step keeps guiding: with the
# clipped β̃ the factor there is 0.72. From here on the library's ε form is used for every sampler (ADM's own code
# does the same for DDIM, in `condition_score`, and it keeps one code path for all samplers).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. What does guided sampling sample?
#
# At every t, the guided score is *exactly* the score of the tempered density p̃_t(x) ∝ p_t(x) p_t(y | x)^s (the
# first line of section 2). It is tempting to conclude that guided sampling draws from the tempered clean density
# p̃_0(x) ∝ p(x) p(y | x)^s. That is true for s = 1 and **false in general**. The reason: the family p̃_t is not
# the forward diffusion of p̃_0. Diffusing p̃_0 gives, with q(x_0 | x_t) the posterior of the *unguided* process,
#
# $$\int q(x_t \mid x_0)\, \tilde p_0(x_0)\, dx_0 \;\propto\; p_t(x_t)\; \mathbb{E}\big[\,p(y \mid x_0)^s \,\big|\, x_t\big],
# \qquad\text{whereas}\qquad \tilde p_t(x_t) \propto p_t(x_t)\;\mathbb{E}\big[\,p(y \mid x_0)\,\big|\, x_t\big]^s .$$
#
# By Jensen's inequality the two differ for s ≠ 1 unless p(y | x_0) is constant over q(x_0 | x_t) — at every t.
# Classes that are far apart at t = 0 do not escape this: at moderate noise x_t is compatible with several
# components, however far apart their clean versions are, so q(x_0 | x_t) spans components with different
# p(y | x_0). The reverse sampler follows the scores of p̃_t, which is not the diffusion of p̃_0, so nothing forces
# it to land on p̃_0.
#
# **The 2-D testbed.** Its clean components are far apart (means 2.6 apart, 7 standard deviations of the widest),
# so at t = 0 p(y | x) ≈ p(y | j) on component j and p̃_0 is a mixture with the **tempered weights**
# ∝ w_j p(y | j)^s (exercise 3; a quadrature of p̃_0 over the plane agrees, printed below). What does guided
# DDPM give?

# %% slideshow={"slide_type": "-"}
N_MIX = by_profile(smoke=1000, cpu=4000, gpu=4000)
MIX_STEPS = by_profile(smoke=40, cpu=100, gpu=100)
x_start = torch.randn(N_MIX, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
y_one = torch.ones(N_MIX, dtype=torch.long)


def component_fractions(samples):
    """Fraction (K,) of 2-D samples (N, 2) nearest to each component mean of the testbed."""
    return torch.bincount(torch.cdist(samples, lm.mixture.means).argmin(1), minlength=lm.mixture.K).double() / len(samples)


mix_samples, rows = {}, []
for s in (0.0, 1.0, 2.0, 4.0):
    out = samplers.sample_ddpm(ClassifierGuided(den_mix, clf_mix, s), x_start, samplers.time_grid(MIX_STEPS).double(),
                               generator=torch.Generator().manual_seed(2), y=y_one)
    mix_samples[s] = out
    rows.append((s, lm.tempered_weights(1, s), component_fractions(out)))
print(f"scale s | tempered weights w_j p(y|j)^s (normalised) | guided DDPM ({MIX_STEPS} steps, n = {N_MIX}): "
      "fraction of samples per component")
for s, want, got in rows:
    print(f"  {s:3.0f}   | {np.round(want.numpy(), 3)} | {np.round(got.numpy(), 3)}")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
s1_frac = rows[1][2]
print("s = 1: guided DDPM's component fractions match p(x | y) (5 binomial standard errors):",
      ck.fractions_agree(s1_frac, lm.conditional(1).weights, N_MIX))
print("the check rejects the unguided weights w_j:", not ck.fractions_agree(s1_frac, lm.mixture.weights, N_MIX))
print("the check rejects weights ∝ p(y | j) (the prior forgotten):",
      not ck.fractions_agree(s1_frac, label_probs[:, 1] / label_probs[:, 1].sum(), N_MIX))

# %% [markdown] slideshow={"slide_type": "subslide"}
# At s = 1 guided DDPM samples p(x | y), as Bayes' rule says. At s = 4 the table's fraction on component 2 (the
# middle one, p(y = 1 | j) = 0.5) already looks low. To see whether that is noise or a bias, sample s = 4 with
# more points and several step counts, and compare with the exact p̃_0 (quadrature over the plane, each point
# assigned to its nearest component, as the samples are):

# %% slideshow={"slide_type": "-"}
N_GAP = by_profile(smoke=2000, cpu=16000, gpu=16000)
GAP_STEPS = by_profile(smoke=(20, 40), cpu=(50, 100, 200), gpu=(50, 100, 200, 400))
g_fine = torch.linspace(-4, 4, 801, dtype=torch.float64)
fx, fy = torch.meshgrid(g_fine, g_fine, indexing="xy")
fine = torch.stack([fx.reshape(-1), fy.reshape(-1)], 1)
p_tilde = (lm.tempered_log_density(fine, 1, 4.0) - lm.tempered_log_density(fine, 1, 4.0).max()).exp()
target4 = torch.bincount(torch.cdist(fine, lm.mixture.means).argmin(1), weights=p_tilde, minlength=3)
target4 = target4 / target4.sum()
print("s = 4: p̃_0's mass per component (quadrature):", np.round(target4.numpy(), 4).tolist(),
      "| tempered weights:", np.round(lm.tempered_weights(1, 4.0).numpy(), 4).tolist())
se4 = float((target4[1] * (1 - target4[1]) / N_GAP).sqrt())
gap_rows = []
for steps in GAP_STEPS:
    x_big = torch.randn(N_GAP, 2, generator=torch.Generator().manual_seed(20 + steps), dtype=torch.float64)
    out = samplers.sample_ddpm(ClassifierGuided(den_mix, clf_mix, 4.0), x_big, samplers.time_grid(steps).double(),
                               generator=torch.Generator().manual_seed(21 + steps), y=torch.ones(N_GAP, dtype=torch.long))
    frac = component_fractions(out)
    gap_rows.append((steps, float(frac[1]), (float(frac[1]) - float(target4[1])) / se4))
    print(f"guided DDPM, {steps:3d} steps, n = {N_GAP}: component 2 holds {frac[1]:.4f} ± {se4:.4f} "
          f"(p̃_0: {target4[1]:.4f}; {gap_rows[-1][2]:+.1f} s.e.)")
pooled = float(np.mean([r[1] for r in gap_rows]))
se_pooled = se4 / len(gap_rows) ** 0.5
print(f"all {len(gap_rows)} step counts together (n = {len(gap_rows) * N_GAP}): {pooled:.4f} ± {se_pooled:.4f}, "
      f"{(pooled - float(target4[1])) / se_pooled:+.1f} s.e. from p̃_0")

# %% [markdown] slideshow={"slide_type": "-"}
# **What is measured.** At every step count guided DDPM puts less mass on component 2 than p̃_0 does: 0.072–0.076
# against 0.084, 3.8–5.6 standard errors each and −8.1 for the three runs together, with no trend from 50 to 200
# steps — so this is not a discretisation error that more steps remove. The missing mass goes to component 3, the
# one most associated with y = 1: guided DDPM over-sharpens even though the clean components are far apart. The
# reason is the one above. At moderate t an x_t between components 2 and 3 is compatible with both, so p_t(y | x)
# there is a blend of their p(y | j), and raising a blend to the power s is not blending the powers. Only at s = 1
# (Bayes' rule, no power) does guided DDPM land on its target.

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
for ax, s in zip(axes, mix_samples):
    lt = lm.tempered_log_density(grid, 1, s) if s > 0 else lm.mixture.log_prob(grid)
    ax.contour(gx, gy, (lt - lt.max()).exp().reshape(121, 121), levels=6, colors="k", linewidths=0.6)
    viz.plot_points(mix_samples[s][:1500], ax=ax, s=1, alpha=0.3, lim=lim,
                    title=f"guided DDPM, s = {s:g}" if s > 0 else "unguided (s = 0)")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("samples for y = 1; contours: the tempered density p(x) p(y | x)^s", y=1.02)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Overlapping classes (1-D).** Two classes N(∓1, 0.6²) with equal weights and hard labels: near x = 0 the label is
# uncertain *and* the posterior of x_0 given a noisy x_t straddles both classes — exactly where Jensen bites. The
# tempered target p(x) p(y = 1 | x)^s is computed by quadrature on a grid. We sample it two ways with the same
# guided scores: plain guided DDPM, and the **predictor–corrector** sampler of chapter 05 with Langevin corrector
# steps at every level. The corrector runs Langevin dynamics *on p̃_t itself* at each t, so — with enough corrector
# steps — it pulls the samples onto p̃_t at every level, whatever path led there.

# %% slideshow={"slide_type": "-"}
PC_LEVELS, PC_CORRECT = by_profile(smoke=(25, 4), cpu=(50, 5), gpu=(50, 10))
lm1 = gt.LabelledMixture(GaussianMixture([[-1.0], [1.0]], stds=[0.6, 0.6]), torch.eye(2, dtype=torch.float64))
den1, clf1 = lm1.denoiser(sch_mix), lm1.classifier(sch_mix)
u = torch.linspace(-4, 5, 9001, dtype=torch.float64)[:, None]
x_start1 = torch.randn(N_MIX, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
y_one1 = torch.ones(N_MIX, dtype=torch.long)
tempered = {}
for s in (1.0, 4.0):
    dens = (lm1.tempered_log_density(u, 1, s) - lm1.tempered_log_density(u, 1, s).max()).exp()
    dens = dens / (dens.sum() * (u[1, 0] - u[0, 0]))
    mean = (dens * u[:, 0]).sum() * (u[1, 0] - u[0, 0])
    guided = ClassifierGuided(den1, clf1, s)
    ddpm = samplers.sample_ddpm(guided, x_start1, samplers.time_grid(MIX_STEPS).double(),
                                generator=torch.Generator().manual_seed(4), y=y_one1)
    pc = samplers.sample_pc(guided, x_start1, samplers.time_grid(PC_LEVELS).double(), n_corrector=PC_CORRECT,
                            snr=0.16, generator=torch.Generator().manual_seed(5), y=y_one1)
    tempered[s] = dict(density=dens, mean=float(mean), ddpm=ddpm, pc=pc)
    se_d, se_p = (float(v.std()) / N_MIX ** 0.5 for v in (ddpm, pc))
    print(f"s = {s:g}: mean of the tempered target {mean:.3f} | guided DDPM {ddpm.mean():.3f} ± {se_d:.3f} "
          f"({(ddpm.mean() - mean) / se_d:+.1f} s.e.; matches: {'yes' if ck.mean_agrees(ddpm, mean) else 'no'}) | "
          f"guided predictor-corrector {pc.mean():.3f} ± {se_p:.3f} ({(pc.mean() - mean) / se_p:+.1f} s.e.; "
          f"matches: {'yes' if ck.mean_agrees(pc, mean) else 'no'})")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
r1, r4 = tempered[1.0], tempered[4.0]
print("s = 1: guided DDPM's mean is p(x | y)'s (5 standard errors):", ck.mean_agrees(r1["ddpm"], r1["mean"]))
print("the check rejects p(x)'s mean 0 (no guidance):", not ck.mean_agrees(r1["ddpm"], 0.0))
print("s = 4: with Langevin correctors the mean is the tempered target's (5 standard errors):",
      ck.mean_agrees(r4["pc"], r4["mean"]))
print("the check rejects p(x | y)'s mean (the corrector undoing the tempering):", not ck.mean_agrees(r4["pc"], r1["mean"]))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, s in zip(axes, (1.0, 4.0)):
    r = tempered[s]
    bins = np.linspace(-3, 4, 71)
    ax.hist(r["ddpm"][:, 0].numpy(), bins=bins, density=True, alpha=0.45, label="guided DDPM")
    ax.hist(r["pc"][:, 0].numpy(), bins=bins, density=True, alpha=0.45, label="guided DDPM + Langevin corrector")
    ax.plot(u[:, 0], r["density"], "k", lw=1.5, label="tempered target p(x) p(y=1|x)^s")
    ax.set_title(f"scale s = {s:g}")
    ax.set_xlim(-3, 4)
    ax.legend(fontsize=8)
plt.tight_layout()
viz.save_figure(fig, "ch06_tempered.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Guided DDPM at s = 4 is pushed *further* from the decision boundary than the tempered density would be: its mean
# is 1.404 ± 0.007 against the target's 1.133 (+36 standard errors), while at s = 1 it lands on p(x | y) (0.996 ±
# 0.009 against 1). The guidance acts at every noise level, where p_t(y | x) is a blurred classifier, and these
# pushes add up. The Langevin corrector brings the mean to 1.159 ± 0.008, +3.1 standard errors from the target:
# within the check's 5, though not on it exactly. Bradley &
# Nakkiran (2024) prove the same for classifier-free guidance: neither DDPM nor DDIM with CFG samples the "powered"
# distribution p(x | y)^{1+w} p(x)^{−w}, and in the continuous-time limit CFG equals a predictor for the conditional
# model plus a Langevin corrector for a powered distribution. On images nobody needs the exact tempered density —
# the knob is valued for what it does to samples — but "guidance samples p(x) p(y | x)^s" is a slogan, not a
# theorem.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Classifier-free guidance (Ho & Salimans 2022)
#
# Bayes' rule once more, now solved for the classifier: p_t(y | x) = p_t(x | y) p(y) / p_t(x), so
#
# $$\nabla_x \log p_t(y \mid x) = \nabla_x \log p_t(x \mid y) - \nabla_x \log p_t(x) = -\frac{1}{\sigma_t}\big(\varepsilon(x, t, y) - \varepsilon(x, t, \varnothing)\big).$$
#
# The difference of a conditional and an unconditional denoiser **is** a (noise-aware) classifier — the *implicit
# classifier*. Put it into classifier guidance of the unconditional model with scale s:
#
# $$\tilde\varepsilon = \varepsilon_\varnothing + s\,(\varepsilon_y - \varepsilon_\varnothing)
#   = (1 + w)\,\varepsilon(x, t, y) - w\,\varepsilon(x, t, \varnothing), \qquad s = 1 + w .$$
#
# This is Eq. 6 of the CFG paper, with w = 0 the plain conditional model. The score it follows is that of
# p_t(x | y)^{1+w} p_t(x)^{−w} ∝ p_t(x) p_t(y | x)^{1+w}. **Conventions:** the `guidance_scale` of the diffusers
# library (and of most text-to-image interfaces) is g = 1 + w, used as ε_∅ + g (ε_y − ε_∅); `guidance_scale = 7.5`
# means w = 6.5, and `guidance_scale = 1` means *no* guidance.
#
# One network does both jobs: train with the label replaced by a null label ∅ with probability p_uncond (the CFG
# paper's Algorithm 1). The course's conditional models have a label embedding with one extra row for ∅.

# %% [markdown] slideshow={"slide_type": "-"}
# Checked on the testbed (`utils.lessons.ch06_checks`): ε(x, t, y) and ε(x, t, ∅) from the exact conditional
# denoiser, the classifier by responsibilities. The nearest wrong answers: the implicit classifier without its 1/σ_t
# (the ε difference taken as the score difference), and CFG with w read as the classifier scale (s = w instead of
# 1 + w — the slip between the paper's w and diffusers' g).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
t, yy = 0.4, torch.randint(0, 2, (256,), generator=gen)
print("−(ε(x,t,y) − ε(x,t,∅))/σ_t = ∇log p_t(y | x) (implicit classifier):",
      ck.implicit_classifier_holds(lambda e_y, e_0, sigma: -(e_y - e_0) / sigma, lm, sch_mix, x1, yy, t))
print("the check rejects −(ε(x,t,y) − ε(x,t,∅)) (no 1/σ_t):",
      not ck.implicit_classifier_holds(lambda e_y, e_0, sigma: -(e_y - e_0), lm, sch_mix, x1, yy, t))
print("classifier-free guidance with w = classifier guidance with scale 1 + w (exact models):",
      ck.cfg_is_classifier_guidance(lambda w: 1 + w, lm, sch_mix, x1, yy, t))
print("the check rejects scale w:", not ck.cfg_is_classifier_guidance(lambda w: w, lm, sch_mix, x1, yy, t))

# %% slideshow={"slide_type": "-"}
eps_c, eps_u = den_mix.eps(x1, t, yy), den_mix.eps(x1, t, None)
g_diffusers = 1 + 2.0  # an identity (algebra): ε_∅ + g (ε_y − ε_∅) = (1 + w) ε_y − w ε_∅ for g = 1 + w
print("diffusers' ε_∅ + g (ε_y − ε_∅) with g = 1 + w, minus ClassifierFree(w) (w = 2): max |difference| = "
      f"{(eps_u + g_diffusers * (eps_c - eps_u) - ClassifierFree(den_mix, 2.0).eps(x1, t, yy)).abs().max():.1e}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Training (CFG paper, Algorithm 1)**, one loss evaluation written out: draw t = n/T, noise x_0, drop each label to
# ∅ with probability p_uncond, regress ε. The library's `diffusion_loss_fn(..., p_uncond=...)` (with `drop_labels`) draws the same random
# numbers in the same order, so with the same generator the two losses agree exactly. **Sampling (Algorithm 2)**:
# an ancestral step with ε̃ in place of ε̂.

# %% slideshow={"slide_type": "-"}
def cfg_training_loss(net, schedule, x0, y, p_uncond, T, generator):
    """Ho & Salimans 2022, Algorithm 1 (one step's loss): jointly train ε(x, t, y) and ε(x, t, ∅)."""
    n = torch.randint(1, T + 1, (x0.shape[0],), generator=generator)
    t = (n.double() / T).to(x0.dtype).to(x0.device)  # step n ↔ t = n / T
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    a, s = (c.reshape(-1, *[1] * (x0.dim() - 1)) for c in (schedule.alpha(t), schedule.sigma(t)))
    x_t = a * x0 + s * eps
    drop = torch.rand(x0.shape[0], generator=generator).to(x0.device) < p_uncond  # c ← ∅ with prob. p_uncond
    y = torch.where(drop, torch.full_like(y, net.null_label), y)
    return (net(x_t, t, y) - eps).pow(2).flatten(1).mean(1).mean()


def cfg_ancestral_sampler(denoiser, w, x, ts, y, generator):
    """Ho & Salimans 2022, Algorithm 2 (with DDPM's posterior variance β̃): sample with ε̃ = (1+w) ε_y − w ε_∅."""
    sch = denoiser.schedule
    for t, t_next in zip(ts[:-1], ts[1:]):
        eps = (1 + w) * denoiser.eps(x, t, y) - w * denoiser.eps(x, t, None)
        x0_hat = (x - sch.sigma(t) * eps) / sch.alpha(t)
        c_x0, c_xt, var = posterior_coefs(sch, t_next, t)
        x = c_x0 * x0_hat + c_xt * x
        if t_next > 0:
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


# %% [markdown] slideshow={"slide_type": "subslide"}
# ## 5. Training on digits
#
# The models come from `utils.training.zoo` (cached: the first run trains them, later runs load them). The conditional UNet
# is trained with p_uncond = 0.1 and, for the comparison of Table 1, with p_uncond = 0.2; the unconditional UNet
# and the noise-aware classifier are for classifier guidance. The classifier is trained on x_t = α_t x_0 + σ_t ε
# with t = n/T, n ~ U{1..T} — the same schedule as the diffusion model it will guide.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
data = image_data()
t0 = time.time()
den_c1, res_c1 = digits_ddpm(conditional=True, p_uncond=0.1)
den_c2, res_c2 = digits_ddpm(conditional=True, p_uncond=0.2)
den_u, res_u = digits_ddpm()
res_clf = gt.noisy_classifier(den_u.schedule)
noisy_clf = res_clf.model
for name, res in [("conditional, p_uncond = 0.1", res_c1), ("conditional, p_uncond = 0.2", res_c2),
                  ("unconditional", res_u), ("noise-aware classifier", res_clf)]:
    print(f"{name:>28}: {'loaded' if res.loaded else 'trained'} ({res.seconds:.0f} s of training)")
print(f"total wall time {time.time() - t0:.0f} s")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x0b, yb = data.train_x[:64].to(device), data.train_y[:64].to(device)
T = den_c1.schedule.T
ours = cfg_training_loss(den_c1.net, den_c1.schedule, x0b, yb, 0.1, T, torch.Generator().manual_seed(7))
library = diffusion_loss_fn(den_c1.schedule, T=T, p_uncond=0.1)(den_c1.net, x0b, yb, torch.Generator().manual_seed(7))
print("Algorithm 1 (training loss) written out = diffusion_loss_fn(..., p_uncond=0.1):", torch.allclose(ours, library))
x_s = torch.randn(8, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
y_s = torch.tensor([0, 1] * 4)
inline = cfg_ancestral_sampler(den_mix, 2.0, x_s, ts, y_s, torch.Generator().manual_seed(9))
library = samplers.sample_ddpm(ClassifierFree(den_mix, 2.0), x_s, ts, y=y_s, generator=torch.Generator().manual_seed(9))
print("Algorithm 2 (sampling) written out = sample_ddpm(ClassifierFree(...)):",
      torch.allclose(inline, library, rtol=1e-10, atol=1e-12))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 4, figsize=(16, 3))
for ax, (name, res) in zip(axes, [("conditional, p_uncond = 0.1", res_c1), ("conditional, p_uncond = 0.2", res_c2),
                                  ("unconditional", res_u), ("noise-aware classifier (cross-entropy)", res_clf)]):
    viz.plot_loss(res.losses, ax=ax, title=name)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# How good is the noise-aware classifier at each noise level? Its accuracy on held-out test digits noised to t.
# Near t = 1 the image is pure noise and nothing beats chance (10 %); that is where its gradient is weakest.

# %% slideshow={"slide_type": "-"}
t_eval = torch.linspace(0.05, 0.95, 10)
acc_t = gt.accuracy_vs_time(noisy_clf, den_u.schedule, data.test_x, data.test_y, t_eval,
                            generator=torch.Generator().manual_seed(10))
print("test accuracy of p_φ(y | x_t, t):", " ".join(f"t={t:.2f}: {a:.2f}" for t, a in zip(t_eval.tolist(), acc_t.tolist())))
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(t_eval, acc_t, "o-")
ax.axhline(0.1, color="0.6", ls="--", label="chance")
ax.set_xlabel("t")
ax.set_ylabel("accuracy")
ax.set_title("noise-aware classifier on noised test digits")
ax.legend()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Implicit versus explicit classifier on digits.** Section 4 says −(ε_y − ε_∅)/σ_t of the conditional model is
# ∇ log p_t(y | x). The trained classifier gives another estimate, ∇ log p_φ(y | x_t, t). For exact models they
# would coincide; for trained ones we can only ask how well their directions agree (cosine similarity, on noised
# test digits with their true labels).

# %% slideshow={"slide_type": "-"}
def gradient_agreement(t, n=200):
    x0, y = data.test_x[:n].to(device), data.test_y[:n].to(device)
    x_t = den_u.schedule.alpha(torch.tensor(t)) * x0 + den_u.schedule.sigma(torch.tensor(t)) * torch.randn(
        x0.shape, generator=torch.Generator().manual_seed(11)).to(device)
    with torch.no_grad():
        implicit = -(den_c1.eps(x_t, t, y) - den_c1.eps(x_t, t, None)) / den_c1.schedule.sigma(torch.tensor(t))
    explicit = ClassifierGuided(den_u, noisy_clf, 1.0).log_prob_grad(x_t, t, y)
    return torch.nn.functional.cosine_similarity(implicit.flatten(1), explicit.flatten(1)).mean().item()


cos_t = [gradient_agreement(float(t)) for t in t_eval]
print("mean cosine(implicit, explicit classifier gradient):",
      " ".join(f"t={t:.2f}: {c:.2f}" for t, c in zip(t_eval.tolist(), cos_t)))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Classifier guidance on digits
#
# The unconditional UNet plus the noise-aware classifier, sampled with DDIM (the library's `sample_guided`: a
# balanced batch of labels, the same noise for every setting, so the settings differ only in the guidance).
# Each row reports the label accuracy and mean confidence of the course's feature classifier on the samples,
# their FD ratio (Fréchet distance to the test digits in the feature classifier's space, divided by the
# real-vs-real floor *at the same n*; defined in chapter 00, section 6, and `utils.eval.metrics`), and the
# within-class spread (mean distance between two samples of the same class, relative to real training digits: below
# 1 = less diverse than the data). For the noise, each set of 1000 is also cut into four class-balanced sets of 250
# (`utils.lessons.ch06_guidance.set_scores`). Two settings share x_1 set by set, so their sets are *paired*, and every
# "A beats B" below is `utils.eval.metrics.compare` on those pairs.

# %% slideshow={"slide_type": "-"}
N_PER_CLASS = by_profile(smoke=6, cpu=100, gpu=100)
K_SETS = by_profile(smoke=3, cpu=4, gpu=4)  # paired parts of each sample set, for utils.eval.metrics.compare
STEPS = by_profile(smoke=4, cpu=25, gpu=50)
ETA = 0.0  # DDIM
labels = gt.balanced_labels(N_PER_CLASS, data.num_classes)
real_spread = gt.within_class_spread(data.train_x, data.train_y)


def report(rows, name):
    n, m = rows[0]["n"], rows[0]["n"] // K_SETS
    print(f"{name:>5} | label accuracy | confidence | FD ratio (n = {n}) | FD ratio, {K_SETS} sets of {m} | "
          f"spread (n = {n}) | spread, {K_SETS} sets")
    for r in rows:
        r["spread"] = gt.within_class_spread(r["samples"], labels) / real_spread
        acc_se = (r["accuracy"] * (1 - r["accuracy"]) / n) ** 0.5
        print(f"{r['value']:5g} | {r['accuracy']:.3f} ± {acc_se:.3f} | {r['confidence']:10.3f} | {r['fd_ratio']:18.2f} | "
              f"{mean_sd(r['sets']['fd_ratio']):>19} | {r['spread']:15.2f} | {mean_sd(r['sets']['spread'])}")
    print(f"(noise: accuracy ± its binomial standard error; the sets' mean ± sd; the real-vs-real floor's spread is "
          f"±{rows[0]['floor_rel_std']:.2f} at n = {n}. The FD ratios of sets of {m} sit lower than those at n = {n} — "
          f"at n = {m} the floor is relatively larger — so compare set ratios only with each other.)")


def show_comparisons(pairs):
    """Print utils.eval.metrics.compare for (row_a, row_b, key, symbol) on the paired sets; FD: lower is better."""
    for a, b, key, sym in pairs:
        names = (f"{sym} = {a['value']:g}", f"{sym} = {b['value']:g}") if isinstance(sym, str) else sym
        c = gt.compare_sets(a, b, key, names, better="better" if key == "fd_ratio" else "lower")
        print(f"  {'FD ratio' if key == 'fd_ratio' else 'spread':>8}: {c['text']}")


# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
t0 = time.time()
CG_SCALES = (0.0, 1.0, 2.0, 4.0, 8.0)
cg_rows = gt.guidance_sweep(lambda s: ClassifierGuided(den_u, noisy_clf, s), CG_SCALES, labels, steps=STEPS, eta=ETA,
                            k=K_SETS)
report(cg_rows, "s")
print(f"paired comparisons over the {K_SETS} sets (utils.eval.metrics.compare):")
show_comparisons([(cg_rows[i], cg_rows[i + 1], "fd_ratio", "s") for i in range(len(cg_rows) - 1)]
                 + [(cg_rows[i], cg_rows[i + 1], "spread", "s") for i in range(len(cg_rows) - 1)])
print(f"({time.time() - t0:.0f} s)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the table.** Every claim below is a paired comparison over the four sets of 250 printed under the table
# (`utils.eval.metrics.compare`: "better" only when the mean paired difference exceeds two standard errors). At s = 0
# the labels are ignored: these are the unconditional model's samples, so the accuracy is at chance (0.087) and
# the FD ratio is that of the unconditional model — worse than the conditional model's of section 7 beyond noise
# (printed with the next section's tables): on digits, knowing the label helps the network a lot. s = 1, Bayes'
# rule with a learned classifier, is not enough: the accuracy stays at 0.80, and the FD ratio does not improve
# (s = 0 against s = 1: within noise on the sets of 250, whose mean is even a little lower at s = 1; at n = 1000 it
# is higher, 3.66 against 2.21 — small-n FD ratios carry a finite-sample bias, see section 8). ADM reports
# the same for its unconditional ImageNet model (Section 4.3: at scale 1 the samples often did not look like the
# requested class) and scaled the gradients up. At s = 2 the accuracy reaches 0.97 and the FD ratio drops sharply
# (better than s = 1 beyond noise) — guidance steers the weak unconditional model away from its malformed digits.
# s = 4 is within noise of s = 2, and s = 8 is worse than s = 4: the within-class spread shrinks at every step of s
# (1.26 → 1.01 → 0.87 → 0.80 → 0.77, each step beyond noise), and at the largest s the lost diversity costs more than
# the remaining fidelity gains.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Classifier-free guidance on digits — and the paper's Table 1
#
# Ho & Salimans sweep w for models trained with p_uncond ∈ {0.1, 0.2, 0.5} on ImageNet 64×64 and report FID (lower =
# closer to the data, sensitive to both fidelity and diversity) and Inception Score (higher = confident,
# varied class predictions) — their Table 1. We run the same sweep, w ∈ {0, 0.1, 0.3, 1, 2, 4}, on digits with
# p_uncond = 0.1 and 0.2, with the same noise and labels for every w.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
t0 = time.time()
W_SWEEP = (0.0, 0.1, 0.3, 1.0, 2.0, 4.0)
cfg_rows = {}
for p_uncond, den in ((0.1, den_c1), (0.2, den_c2)):
    cfg_rows[p_uncond] = gt.guidance_sweep(lambda w: ClassifierFree(den, w), W_SWEEP, labels, steps=STEPS, eta=ETA,
                                           k=K_SETS)
    print(f"p_uncond = {p_uncond}")
    report(cfg_rows[p_uncond], "w")
    rs = cfg_rows[p_uncond]
    print(f"paired comparisons over the {K_SETS} sets:")
    show_comparisons([(rs[i], rs[i + 1], "fd_ratio", "w") for i in range(len(rs) - 1)]
                     + [(rs[i], rs[i + 1], "spread", "w") for i in range(len(rs) - 1)])
print("p_uncond = 0.1 against 0.2 at each w (same noise and labels):")
show_comparisons([(a, b, "fd_ratio", (f"p_uncond 0.1, w = {a['value']:g}", f"p_uncond 0.2, w = {b['value']:g}"))
                  for a, b in zip(cfg_rows[0.1], cfg_rows[0.2])])
print(f"({time.time() - t0:.0f} s)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Side by side with the paper.** Published numbers: Ho & Salimans (2022), Table 1, ImageNet 64×64, p_uncond = 0.1,
# FID (four of the table's entries are copied here; "—" marks sweep points not copied). Ours: the p_uncond = 0.1
# digits model above.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
PUBLISHED_FID = {0.0: 1.80, 0.1: 1.55, 1.0: 12.6, 4.0: 26.22}  # Ho & Salimans 2022, Table 1, p_uncond = 0.1
print("   w | ImageNet 64 FID (paper) | digits FD ratio | digits accuracy | digits confidence | spread")
for r in cfg_rows[0.1]:
    pub = PUBLISHED_FID.get(r["value"])
    print(f"{r['value']:4g} | {pub if pub is not None else '—':>23} | {r['fd_ratio']:15.2f} | {r['accuracy']:15.3f} | "
          f"{r['confidence']:17.3f} | {r['spread']:6.2f}")
ok_rows = [r for r in cfg_rows[0.1] if r["accuracy"] >= 0.99]
best = min(ok_rows, key=lambda r: r["fd_ratio"]) if ok_rows else max(cfg_rows[0.1], key=lambda r: r["accuracy"])
yes_no = lambda ok: "yes" if ok else "no"  # noqa: E731
print(f"\nbest w with accuracy ≥ 99 %: w = {best['value']:g}, accuracy {best['accuracy']:.3f}, FD ratio {best['fd_ratio']:.2f}"
      f" -> quality target (≥ 99 %, FD ratio ≤ 1.5) met: {yes_no(best['accuracy'] >= 0.99 and best['fd_ratio'] <= 1.5)}")
ok_cg = [r for r in cg_rows if r["accuracy"] >= 0.99]
best_cg = min(ok_cg, key=lambda r: r["fd_ratio"]) if ok_cg else max(cg_rows, key=lambda r: r["accuracy"])
print(f"classifier guidance, best scale (lowest FD ratio at ≥ 99 %, else highest accuracy): s = {best_cg['value']:g}, "
      f"accuracy {best_cg['accuracy']:.3f}, FD ratio {best_cg['fd_ratio']:.2f} -> target (≥ 95 %) met: "
      f"{yes_no(best_cg['accuracy'] >= 0.95)}")
print("classifier-free against classifier guidance, each at the setting above (same noise and labels):")
show_comparisons([(best, best_cg, "fd_ratio", (f"CFG w = {best['value']:g}", f"CG s = {best_cg['value']:g}")),
                  (best, best_cg, "spread", (f"CFG w = {best['value']:g}", f"CG s = {best_cg['value']:g}")),
                  (cfg_rows[0.1][0], cg_rows[0], "fd_ratio", ("conditional model (w = 0)", "unconditional (s = 0)"))])
print("\nTable 1, p_uncond = 0.1: FID 1.80 at w = 0 -> 1.55 at w = 0.1 (a little guidance helps), then rising to 26.22 at w = 4")
for p_uncond, rs in cfg_rows.items():
    little = gt.compare_sets(rs[1], rs[0], "fd_ratio", ("w = 0.1", "w = 0"))
    rising = [gt.compare_sets(a, b, "fd_ratio", ("lower w", "higher w"))["verdict"] for a, b in zip(rs[1:-1], rs[2:])]
    print(f"digits, p_uncond = {p_uncond}: w = 0.1 against w = 0: {little['verdict']} -> 'a little guidance helps' "
          f"reproduces: {yes_no(little['verdict'] == 'w = 0.1 better')}; each step of w from 0.1 to 4 raises the FD "
          f"ratio beyond noise: {yes_no(all(v == 'lower w better' for v in rising))} ({rising.count('lower w better')} of "
          f"{len(rising)} steps)")
print(f"(digits FD ratios at n = {cfg_rows[0.1][0]['n']}; their noise and the paired comparisons are in the tables above)")

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
ws = np.array(W_SWEEP)
for p_uncond, marker in ((0.1, "o-"), (0.2, "s--")):
    rs = cfg_rows[p_uncond]
    axes[0].plot(ws, [r["fd_ratio"] for r in rs], marker, label=f"digits, p_uncond = {p_uncond}")
    axes[1].plot(ws, [r["accuracy"] for r in rs], marker, label=f"accuracy, p_uncond = {p_uncond}")
    axes[1].plot(ws, [r["confidence"] for r in rs], marker, alpha=0.5, label=f"confidence, p_uncond = {p_uncond}")
    axes[2].plot(ws, [r["spread"] for r in rs], marker, label=f"p_uncond = {p_uncond}")
axes[0].axhline(1.0, color="0.6", ls=":", lw=1)
axes[0].set_ylabel("FD ratio (1 = real-vs-real)")
ax_pub = axes[0].twinx()
ax_pub.plot(list(PUBLISHED_FID), list(PUBLISHED_FID.values()), "k^:", label="ImageNet 64 FID (Table 1)")
ax_pub.set_ylabel("published FID")
axes[0].legend(loc="upper left", fontsize=8)
ax_pub.legend(loc="center left", fontsize=8)
axes[0].set_title("distance to the data")
axes[1].set_title("fidelity: classifier accuracy / confidence")
axes[1].legend(fontsize=7)
axes[2].axhline(1.0, color="0.6", ls=":", lw=1)
axes[2].set_title("diversity: within-class spread / real")
axes[2].legend(fontsize=8)
for ax in axes:
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(-0.02, 5)
    ax.set_xlabel("guidance strength w")
plt.tight_layout()
viz.save_figure(fig, "ch06_tradeoff.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Where the clip goes.** Every x̂_0 of these digits models is clipped to [−1, 1], as DDPM clips it. With guidance
# the clip belongs on the *guided* prediction: ε̃ is what the sampler uses, and the x̂_0 that goes with it is the
# one that can leave the data range. The nearest wrong answer clips the two predictions ε(x, t, y) and ε(x, t, ∅)
# and leaves their combination unclipped. Same model, labels and noise as the table above:

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
class InnerClippedCFG(PredictionModel):
    """The wrong placement: (1 + w) ε_clipped(x, t, y) − w ε_clipped(x, t, ∅), and no clip on the guided x̂_0."""

    def __init__(self, denoiser, w):
        self.denoiser, self.w = denoiser, w
        self.sde, self.schedule, self.clip_x0 = denoiser.sde, denoiser.schedule, None

    def predict_raw(self, x, t, y=None):
        eps_c, eps_u = self.denoiser.eps(x, t, y), self.denoiser.eps(x, t, None)
        return with_x0(self, x, t, (1 + self.w) * eps_c - self.w * eps_u)


def at_the_limits(images):
    """Fraction of pixels within 0.01 of ±1 (real digits: their background and the darkest strokes)."""
    return float((images.abs() >= 0.99).float().mean())


print(f"real test digits: pixels at ±1 {at_the_limits(data.test_x):.0%}")
for w in (1.0, 4.0):
    right = next(r for r in cfg_rows[0.1] if r["value"] == w)
    wrong_samples = gt.sample_guided(InnerClippedCFG(den_c1, w), labels, steps=STEPS, eta=ETA)
    wrong = {"value": w, **gt.evaluate_samples(wrong_samples, labels), "sets": gt.set_scores(wrong_samples, labels, K_SETS)}
    wrong["spread"] = gt.within_class_spread(wrong_samples, labels) / real_spread
    print(f"w = {w:g}, p_uncond = 0.1 | guided x̂_0 clipped: FD ratio {right['fd_ratio']:.2f}, spread "
          f"{right['spread']:.2f}, pixels at ±1 {at_the_limits(right['samples']):.0%} | only the two inner "
          f"predictions clipped: FD ratio {wrong['fd_ratio']:.2f}, spread {wrong['spread']:.2f}, pixels at ±1 "
          f"{at_the_limits(wrong_samples):.0%}   (n = {right['n']})")
    show_comparisons([(right, wrong, key, (f"guided x̂_0 clipped, w = {w:g}", "inner clipped")) for key in ("fd_ratio", "spread")])

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What reproduces, and what does not.** Read the two tables above against the paper's Table 1; each "beyond
# noise" is a paired comparison over the four sets (printed with the tables), and the FD ratios quoted are at n = 1000.
# - *Fidelity rises with w.* The paper's Inception Score increases monotonically with w; our label accuracy and
#   confidence rise from w = 0 (0.990 for p_uncond = 0.1) and saturate at 1.000 from w = 1 — digits are an easy
#   ten-class problem, so they saturate quickly.
# - *Diversity falls with w.* For p_uncond = 0.1 the FD ratio rises beyond noise at every step from w = 0.1 to 4
#   (0.80 → 0.99 → 1.42 → 1.61 → 1.76): the FID side of Table 1 (12.6 at w = 1 and 26.22 at w = 4, from 1.80
#   unguided) **reproduces** in shape. For p_uncond = 0.2 it rises from w = 0.1 to 2, and w = 2 and 4 are within
#   noise. The within-class spread shrinks beyond noise at every step from w = 0 to w = 1 (0.90 → 0.83), barely
#   moves from w = 1 to 2 (within noise for p_uncond = 0.1; 0.002 lower, just beyond noise, for 0.2), and rises
#   again at w = 4 (0.87, beyond noise) in both models.
# - *Where the clip goes* matters at strong guidance. Clipping only the two inner predictions — the nearest wrong
#   answer — gives at w = 4 a higher FD ratio (2.19 against 1.76, beyond noise) and a lower spread (0.79 against
#   0.87), and drives more pixels to ±1 (48 % against 31 %; real digits: 58 %, mostly their black background). At
#   w = 1 the difference is small but still beyond noise (FD ratio 1.46 against 1.42; pixels at ±1 39 % against 34 %).
# - *A little guidance helps FID* — **does not reproduce for p_uncond = 0.1**, the paper's model. The paper's FID is
#   better at w = 0.1 (1.55) than unguided (1.80); our w = 0.1 and w = 0 are within noise (0.80 and 0.75). For
#   p_uncond = 0.2, w = 0.1 is better than w = 0 beyond noise, by a small margin (0.77 against 0.76 at n = 1000).
#   Our conditional model is already good without guidance — 99 % accuracy and an FD ratio below 1, i.e. as close
#   to the test digits as real training digits are at this n (the balanced batch of labels likely helps: the test
#   split is stratified by class, a random subset of training digits is not) — so there are few malformed digits
#   left for a little guidance to remove before the loss of diversity starts to cost.
# - *p_uncond 0.1 versus 0.2.* The paper finds the two alike (and both better than 0.5). Ours are within noise
#   unguided (w = 0), but from w = 0.1 on p_uncond = 0.2 is better at every w, and the gap grows with w (at w = 4:
#   1.43 against 1.76): on digits the model trained with more label dropout loses less to strong guidance. That part
#   does not reproduce.
# - *Classifier-free against classifier guidance.* The conditional model unguided (w = 0, FD ratio 0.75) is better
#   beyond noise than classifier guidance at its best scale with ≥ 99 % accuracy (s = 4, 1.26), and the
#   classifier-guided samples are less diverse (spread 0.80 against 0.90). This compares two networks as much as two
#   kinds of guidance: the conditional one is trained with labels, the unconditional one of classifier guidance is
#   not.
#
# Scales differ: ImageNet's FID is measured with tens of thousands of samples and an Inception network, ours with
# the n samples printed above and a small digits classifier, so only the *shape* of the curve is comparable, not the numbers.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Samples: one panel per w, rows are classes** (three samples per class, from the same noise in every panel). As
# w grows the digits become bolder, more prototypical and more alike; the same holds for s in classifier guidance,
# whose s = 0 panel is the unconditional model (labels ignored).

# %% slideshow={"slide_type": "-"}
def class_by_value_figure(rows, symbol, title, per_cell=3):
    """One panel per guidance value: rows = classes 0..9, ``per_cell`` samples each (same noise in every panel)."""
    fig, axes = plt.subplots(1, len(rows), figsize=(1.9 * len(rows), 5.6))
    for ax, r in zip(axes, rows):
        tiles = torch.cat([r["samples"][labels == c][:per_cell] for c in range(data.num_classes)])
        viz.show_images(tiles, nrow=per_cell, ax=ax)
        ax.set_title(f"{symbol} = {r['value']:g}")
    fig.suptitle(title)
    plt.tight_layout()
    return fig


per_cell = min(3, N_PER_CLASS)
fig = class_by_value_figure(cfg_rows[0.1], "w", "classifier-free guidance (p_uncond = 0.1); rows are classes 0–9", per_cell)
viz.save_figure(fig, "ch06_cfg_grid.png", dpi=100)
plt.show()

# %% slideshow={"slide_type": "-"}
fig = class_by_value_figure(cg_rows, "s", "classifier guidance (unconditional model + noise-aware classifier)", per_cell)
viz.save_figure(fig, "ch06_cg_grid.png", dpi=100)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Try it: one class, one knob
#
# Pick a class and a guidance strength — w for classifier-free guidance, s for classifier guidance. The samples come
# from a fixed noise batch (ten per class, 20 DDPM steps), so only the guidance changes between settings. Above the
# samples: the feature classifier's accuracy on the chosen class and on all classes, the within-class spread
# (relative to real digits) and the FD ratio of the whole batch. With only n = 100 images the FD ratio is dominated
# by its finite-sample bias — it lands far below 1 and rewards low diversity — so compare it only between settings
# of this widget, never with the tables above. The computation is `utils.lessons.ch06_guidance.guidance_panel`; results
# are memoised, so revisiting a setting is instant.

# %% slideshow={"slide_type": "-"}
PANEL_PER_CLASS, PANEL_STEPS = by_profile(smoke=2, cpu=10, gpu=10), by_profile(smoke=3, cpu=20, gpu=20)
_panels = {}


def panel(mode, value):
    key = (mode, float(value))
    if key not in _panels:
        make = (lambda w: ClassifierFree(den_c1, w)) if mode == "classifier-free (w)" else \
            (lambda s: ClassifierGuided(den_u, noisy_clf, s))
        _panels[key] = gt.guidance_panel(make, value, n_per_class=PANEL_PER_CLASS, steps=PANEL_STEPS)
    return _panels[key]


def show_panel(digit, mode, value, ax=None):
    p = panel(mode, value)
    ax = ax or plt.subplots(figsize=(4, 2.4))[1]
    viz.show_images(p["samples"][p["labels"] == digit], nrow=PANEL_PER_CLASS, ax=ax)
    ax.set_title(f"{mode.split()[0]} {value:g}: class {digit} accuracy {p['per_class'][digit]:.2f}\n"
                 f"all classes: accuracy {p['accuracy']:.2f}, spread {p['spread']:.2f}, FD ratio {p['fd_ratio']:.2f}",
                 fontsize=9)
    return ax


# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def _widget(digit=3, mode="classifier-free (w)", value=1.0):
    show_panel(digit, mode, value)
    plt.show()


_ = widgets.interact(_widget, digit=widgets.IntSlider(value=3, min=0, max=9, description="class"),
                     mode=widgets.ToggleButtons(options=["classifier-free (w)", "classifier (s)"]),
                     value=widgets.SelectionSlider(options=[0.0, 0.1, 0.3, 1.0, 2.0, 4.0, 8.0], value=1.0,
                                                   description="w or s"))

# %% slideshow={"slide_type": "-"}
fig, axes = plt.subplots(2, 3, figsize=(13, 3.4))
for ax, value in zip(axes[0], (0.0, 1.0, 4.0)):
    show_panel(3, "classifier-free (w)", value, ax)
for ax, value in zip(axes[1], (0.0, 2.0, 8.0)):
    show_panel(3, "classifier (s)", value, ax)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **In motion.** One x_T per class, sampled with 50 DDPM steps and the same noise, without guidance (w = 0, top row)
# and with classifier-free guidance w = 4 (bottom row), every step shown: the guided chain commits to its class
# early and ends bolder; saved as `figures/ch06_cfg.gif` for the README.

# %% slideshow={"slide_type": "-"}
y_gif = torch.arange(data.num_classes, device=device)
x_gif = torch.randn(data.num_classes, *data.train_x.shape[1:], generator=torch.Generator().manual_seed(606)).to(device)
ts_gif = samplers.time_grid(by_profile(smoke=5, cpu=50, gpu=50), T=den_c1.schedule.T).to(device)
states = {}
for w in (0.0, 4.0):
    states[w] = [x_gif.cpu()]
    samplers.sample_ddpm(ClassifierFree(den_c1, w), x_gif, ts_gif, y=y_gif, generator=torch.Generator().manual_seed(607),
                         callback=lambda i, t, x_next, x0, keep=states[w]: keep.append(x_next.clamp(-1, 1).cpu()))
frames = [viz.image_grid(torch.cat([a, b]), nrow=data.num_classes) for a, b in zip(states[0.0], states[4.0])]
gif = viz.save_gif(frames + frames[-1:] * 8, "ch06_cfg.gif", fps=8, figsize=(4.5, 1.4),
                   title="w = 0 (top), w = 4 (bottom)")
print("wrote", gif.name, "with", len(frames) + 8, "frames")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Why classifier-free guidance won, and where it went
#
# - **No extra model.** Classifier guidance needs a second network trained on *noised* images — an off-the-shelf
#   classifier will not do, since p_t(y | x_t) must be right at every noise level (section 5's accuracy curve shows
#   how that classifier degrades with t). CFG needs only label dropout during training: the CFG paper finds p_uncond = 0.1
#   and 0.2 alike (0.5 worse), and on digits the two models are within noise of each other unguided (section 7).
# - **No adversarial gradients.** ∇ₓ log p_φ(y | x) of a discriminative classifier can be raised by perturbations
#   that look like nothing to a person — the same gradients that make adversarial examples. Ho & Salimans designed
#   CFG partly to show that guidance does not rely on such gradients: a purely generative model gives the same
#   trade-off. Its implicit classifier is a difference of two denoisers and carries no gradient through a
#   classifier at all.
# - **Any conditioning.** Nothing in ε̃ = (1 + w) ε(x, t, c) − w ε(x, t, ∅) requires c to be a class. GLIDE (Nichol et
#   al. 2022) conditions on a caption and drops it to the empty caption; its human raters preferred CFG samples to
#   CLIP-guided ones. Imagen (Saharia et al. 2022) and Stable Diffusion (Rombach et al. 2022, on a latent space —
#   the latent-diffusion chapter) do the same with text embeddings; Imagen pairs large w with *dynamic thresholding*
#   of x̂₀ to keep pixels in range. A "negative prompt" simply replaces ε(x, t, ∅) by ε(x, t, c_neg).
# - **The cost**: two network evaluations per step (usually one batch of 2B), and the diversity loss measured above.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Exercises
#
# Each exercise has a cell for your code and a collapsed reference solution that runs the checker.
#
# **Exercise 1 — the guided ε.** Write `guided_eps(eps, grad_log_p, sigma, scale)`: classifier guidance in ε units,
# given the unconditional ε̂, the classifier gradient ∇ₓ log p(y | x_t) and σ_t. Derive it from score = −ε/σ_t.

# %% slideshow={"slide_type": "-"}
def my_guided_eps(eps, grad_log_p, sigma, scale):
    ...  # your code


# ch06.check_guided_eps(my_guided_eps)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def guided_eps(eps, grad_log_p, sigma, scale):
    return eps - scale * sigma * grad_log_p  # score + s ∇log p  ⇔  ε − s σ ∇log p


ch06.check_guided_eps(guided_eps)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — the sign of w.** Write `cfg_eps(eps_cond, eps_uncond, w)` in the CFG paper's convention (w = 0 is the
# conditional model). Then answer for yourself: what does w = −1 give? And which w does diffusers'
# `guidance_scale = 7.5` correspond to?

# %% slideshow={"slide_type": "-"}
def my_cfg_eps(eps_cond, eps_uncond, w):
    ...  # your code


# ch06.check_cfg_eps(my_cfg_eps)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def cfg_eps(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond - w * eps_uncond  # w = −1: the unconditional model; guidance_scale 7.5 ⇔ w = 6.5


ch06.check_cfg_eps(cfg_eps)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — tempered mixture weights.** A mixture Σ_j w_j N_j with far-apart components, whose component j has
# label y with probability p(y | j). Write `tempered_weights(weights, p_y, scale)`: the component weights of the
# tempered density p(x) p(y | x)^s. (The checker integrates the tempered density numerically.)

# %% slideshow={"slide_type": "-"}
def my_tempered_weights(weights, p_y, scale):
    ...  # your code


# ch06.check_tempered_weights(my_tempered_weights)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def tempered_weights(weights, p_y, scale):
    tempered = weights * p_y**scale  # on component j: p(x) ≈ w_j N_j(x) and p(y | x) ≈ p(y | j)
    return tempered / tempered.sum()


ch06.check_tempered_weights(tempered_weights)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Conditioning on y adds ∇ log p_t(y | x) to the score — a classifier of *noisy* inputs (section 1, exact check).
# - Classifier guidance scales that term by s: ε̂ − s σ_t ∇ log p_φ. ADM's Algorithm 1 (mean shift s Σ g) and the ε
#   form are the same idea, but Algorithm 1's shift is √a σ_s²/σ_t² times the ε form's: 0.67–0.79 on the first 20
#   steps of the digits models' 25-step grid, so in ancestral sampling at equal s the ε form guides harder at every
#   step (section 2).
# - The guided score is the score of p_t(x) p_t(y | x)^s at every t, but guided DDPM does **not** sample
#   p(x) p(y | x)^s for s ≠ 1 — not even for classes far apart at t = 0 (s = 4: 0.072–0.076 on a component where
#   the target has 0.084); Langevin correctors at every level bring it to the target (section 3).
# - Classifier-free guidance: ε̃ = (1 + w) ε_y − w ε_∅ is classifier guidance with scale 1 + w and the implicit
#   classifier −(ε_y − ε_∅)/σ_t; diffusers' guidance_scale is 1 + w.
# - On digits, w trades diversity for fidelity as in the CFG paper's Table 1 (section 7's tables and figure); the
#   paper's "a little guidance improves FID" does not reproduce for p_uncond = 0.1 (w = 0.1 and 0 within noise).
#
# **Further reading.** Nichol et al., *GLIDE* (ICML 2022, arXiv:2112.10741); Saharia et al., *Imagen*
# (NeurIPS 2022, arXiv:2205.11487); Rombach et al., *High-Resolution Image Synthesis with Latent Diffusion Models*
# (CVPR 2022); Bradley & Nakkiran, *Classifier-Free Guidance is a Predictor-Corrector* (TMLR 2025,
# arXiv:2408.09000); Chidambaram et al., *What does guidance do? A fine-grained analysis in a simple setting*
# (NeurIPS 2024); Karras et al., *Guiding a Diffusion Model with a Bad Version of Itself*
# (NeurIPS 2024, arXiv:2406.02507).
#
# **Next.** This ends the core of the course. The later chapters change *how many steps* a sampler needs (fast ODE
# solvers: DDIM → DPM-Solver), *what path* the noise takes (flow matching and rectified flow), and *where* diffusion
# runs (latent diffusion, where classifier-free guidance with text is the standard interface).
