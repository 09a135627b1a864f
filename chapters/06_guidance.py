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
from utils.schedules import cosine
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
# `utils.lessons.ch06_guidance.LabelledMixture` implements this; we check Bayes' rule for scores with autograd.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
def grad_of(log_density, x):
    """∇ₓ of a log-density (B,) at points x (B, D), by autograd."""
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_density(xr).sum(), xr)
    return g


sch_mix = cosine(1000)
label_probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)  # rows: p(y | component j)
lm = gt.LabelledMixture(analytic_mixture(), label_probs)
x = 1.5 * torch.randn(400, 2, generator=gen, dtype=torch.float64)
ok = True
for t in (0.05, 0.3, 0.7):
    for y in (0, 1):
        cond = grad_of(lambda z: lm.conditional(y).log_prob_t(z, sch_mix, t), x)
        uncond = grad_of(lambda z: lm.mixture.log_prob_t(z, sch_mix, t), x)
        clf = grad_of(lambda z: lm.log_label_posterior_t(z, sch_mix, t)[:, y], x)
        ok &= torch.allclose(cond, uncond + clf, atol=1e-9)
print("∇log p_t(x | y) = ∇log p_t(x) + ∇log p_t(y | x) at t = 0.05, 0.3, 0.7:", ok)
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
torch.testing.assert_close(ours, library)
print("Algorithm 2 written out = sample_ddim(ClassifierGuided(...)):", True)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Algorithm 1 versus the ε form.** The library guides ancestral sampling the same way as DDIM: it hands the guided
# ε̂ to the DDPM step (`sample_ddpm` is DDIM with η = 1). Is that Algorithm 1? Put ε̂ − sσ_t g (g = ∇ log p_φ) into
# the DDPM mean μ = (x_t − (1 − a)/σ_t · ε̂)/√a, where a = ᾱ_t/ᾱ_s = 1 − β is the step's "1 − β": the mean moves by
# s g (1 − a)/√a. Algorithm 1 moves it by s Σ g = s g (1 − a) σ_s²/σ_t². The two shifts differ by the factor
#
# $$\frac{\text{Algorithm 1}}{\varepsilon\text{ form}} = \sqrt{a}\,\frac{\sigma_s^2}{\sigma_t^2},$$
#
# which tends to 1 as the steps shrink, but is exactly **0** on the last step (σ_0 = 0: Algorithm 1 stops guiding
# there) and small on the last few steps of a coarse grid, where σ_s²/σ_t² is far from 1. One step of each, with
# the same noise z:

# %% slideshow={"slide_type": "-"}
def classifier_guided_ancestral_step(denoiser, classifier, scale, x, t, t_next, y, z):
    """Dhariwal & Nichol 2021, Algorithm 1, one step: x_{t−1} ~ N(μ + s Σ ∇ₓ log p_φ(y | x_t), Σ)."""
    c_x0, c_xt, var = posterior_coefs(denoiser.schedule, t_next, t)  # μ = c_x0 x̂_0 + c_xt x_t, Σ = β̃
    mean = c_x0 * denoiser.x0(x, t) + c_xt * x
    grad = ClassifierGuided(denoiser, classifier, 1.0).log_prob_grad(x, t, y)
    return mean + scale * var * grad + var.sqrt() * z


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
sch = den_mix.schedule
ok = True
for i in (5, 25, 45):
    t, t_next = ts[i], ts[i + 1]
    z = torch.randn(x1.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
    step = lambda s: samplers.ddim_step(ClassifierGuided(den_mix, clf_mix, s), x1, t, t_next, eta=1.0, y=y1,  # noqa: E731
                                        generator=torch.Generator().manual_seed(i))[0]
    shift_eps = step(3.0) - step(0.0)
    shift_alg1 = classifier_guided_ancestral_step(den_mix, clf_mix, 3.0, x1, t, t_next, y1, z) - step(0.0)
    a = sch.alpha_bar(t) / sch.alpha_bar(t_next)
    ok &= torch.allclose(shift_alg1, a.sqrt() * sch.sigma(t_next) ** 2 / sch.sigma(t) ** 2 * shift_eps, atol=1e-10)
print("Algorithm 1's mean shift = √a σ_s²/σ_t² × the ε form's shift:", ok)
ratio = lambda i: (sch.alpha_bar(ts[i]) / sch.alpha_bar(ts[i + 1])).sqrt() * sch.sigma(ts[i + 1]) ** 2 / sch.sigma(ts[i]) ** 2  # noqa: E731
print("the factor on this 50-step grid, steps 2, 10, 25, 40, 45, 48, 49, 50:",
      [round(float(ratio(i)), 2) for i in (1, 9, 24, 39, 44, 47, 48, 49)])

# %% [markdown] slideshow={"slide_type": "-"}
# So the two agree in the limit of small steps and differ mostly at the end of sampling, where Algorithm 1 guides
# less. From here on the library's ε form is used for every sampler (it is what ADM's own code does for DDIM, and it
# keeps one code path for all samplers).

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
# By Jensen's inequality the two differ for s ≠ 1 unless p(y | x_0) is constant over the posterior of x_0 — e.g.
# when the classes are far apart. The reverse sampler follows the scores of p̃_t, which at no t is the diffusion
# of p̃_0, so nothing forces it to land on p̃_0.
#
# **Far-apart components (the 2-D testbed).** Here p(y | x) ≈ p(y | j) on component j, so p̃_0 is a mixture with
# the **tempered weights** ∝ w_j p(y | j)^s (exercise 3) — and guided DDPM should land close to them.

# %% slideshow={"slide_type": "-"}
N_MIX = by_profile(smoke=1000, cpu=4000, gpu=4000)
MIX_STEPS = by_profile(smoke=40, cpu=100, gpu=100)
x_start = torch.randn(N_MIX, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
y_one = torch.ones(N_MIX, dtype=torch.long)
mix_samples, rows = {}, []
for s in (0.0, 1.0, 2.0, 4.0):
    out = samplers.sample_ddpm(ClassifierGuided(den_mix, clf_mix, s), x_start, samplers.time_grid(MIX_STEPS).double(),
                               generator=torch.Generator().manual_seed(2), y=y_one)
    mix_samples[s] = out
    frac = torch.bincount(torch.cdist(out, lm.mixture.means).argmin(1), minlength=3).double() / N_MIX
    rows.append((s, lm.tempered_weights(1, s), frac))
print("scale s | tempered weights w_j p(y|j)^s (normalised) | guided DDPM: fraction of samples per component")
for s, want, got in rows:
    print(f"  {s:3.0f}   | {np.round(want.numpy(), 3)} | {np.round(got.numpy(), 3)}")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
s1_weights, s1_frac = rows[1][1], rows[1][2]
se = (s1_weights * (1 - s1_weights) / N_MIX).sqrt()
print("s = 1: guided DDPM's component fractions match p(x | y) within 4 standard errors:",
      bool(torch.all((s1_frac - s1_weights).abs() < 4 * se + 0.005)))
print("larger s moves mass to the component most associated with y:",
      bool(rows[3][2][2] > rows[2][2][2] > rows[1][2][2] > rows[0][2][2]))

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
    print(f"s = {s:g}: mean of the tempered target {mean:.3f} | guided DDPM {ddpm.mean():.3f} | "
          f"guided predictor-corrector {pc.mean():.3f}   (std of the mean ≈ {0.6 / N_MIX ** 0.5:.3f})")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
r1, r4 = tempered[1.0], tempered[4.0]
print("s = 1: guided DDPM samples p(x | y) (mean within 0.05):", abs(float(r1["ddpm"].mean()) - r1["mean"]) < 0.05)
print("s = 4: guided DDPM overshoots the tempered target (mean off by > 0.15):",
      float(r4["ddpm"].mean()) - r4["mean"] > 0.15)
print("s = 4: with Langevin correctors it lands on the tempered target (mean within 0.06):",
      abs(float(r4["pc"].mean()) - r4["mean"]) < 0.06)

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
# Guided DDPM at s = 4 is pushed *further* from the decision boundary than the tempered density would be: the
# guidance acts at every noise level, where p_t(y | x) is a blurred classifier, and these pushes add up. Bradley &
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

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
t, yy = 0.4, torch.randint(0, 2, (256,), generator=gen)
eps_c, eps_u = den_mix.eps(x1, t, yy), den_mix.eps(x1, t, None)
grad = ClassifierGuided(den_mix, clf_mix, 1.0).log_prob_grad(x1, t, yy)
print("ε(x,t,y) − ε(x,t,∅) = −σ_t ∇log p_t(y | x) (implicit classifier):",
      torch.allclose(eps_c - eps_u, -sch_mix.sigma(torch.tensor(t)).item() * grad, atol=1e-8))
ok = all(torch.allclose(ClassifierFree(den_mix, w).eps(x1, t, yy), ClassifierGuided(den_mix, clf_mix, 1 + w).eps(x1, t, yy),
                        atol=1e-8) for w in (0.5, 2.0, 4.0))
print("classifier-free guidance with w = classifier guidance with scale 1 + w (exact models):", ok)
g_diffusers = 1 + 2.0
print("diffusers' ε_∅ + g (ε_y − ε_∅) with g = 1 + w equals (1 + w) ε_y − w ε_∅:",
      torch.allclose(eps_u + g_diffusers * (eps_c - eps_u), ClassifierFree(den_mix, 2.0).eps(x1, t, yy)))

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
torch.testing.assert_close(ours, library)
print("Algorithm 1 (training loss) written out = diffusion_loss_fn(..., p_uncond=0.1):", True)
x_s = torch.randn(8, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
y_s = torch.tensor([0, 1] * 4)
torch.testing.assert_close(cfg_ancestral_sampler(den_mix, 2.0, x_s, ts, y_s, torch.Generator().manual_seed(9)),
                           samplers.sample_ddpm(ClassifierFree(den_mix, 2.0), x_s, ts, y=y_s,
                                                generator=torch.Generator().manual_seed(9)))
print("Algorithm 2 (sampling) written out = sample_ddpm(ClassifierFree(...)):", True)

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
# real-vs-real floor *at the same n*; defined in chapter 00, section 6, and `utils.eval.metrics`), and the within-class spread (mean distance between two
# samples of the same class, relative to real training digits: below 1 = less diverse than the data).

# %% slideshow={"slide_type": "-"}
N_PER_CLASS = by_profile(smoke=2, cpu=100, gpu=100)
STEPS = by_profile(smoke=4, cpu=25, gpu=50)
ETA = 0.0  # DDIM
labels = gt.balanced_labels(N_PER_CLASS, data.num_classes)
real_spread = gt.within_class_spread(data.train_x, data.train_y)


def report(rows, name):
    print(f"{name:>6} | label accuracy | confidence | FD ratio (n = {rows[0]['n']}) | within-class spread")
    for r in rows:
        r["spread"] = gt.within_class_spread(r["samples"], labels) / real_spread
        print(f"{r['value']:6g} | {r['accuracy']:14.3f} | {r['confidence']:10.3f} | {r['fd_ratio']:17.2f} | "
              f"{r['spread']:19.2f}")
    print(f"(real-vs-real floor spread at this n: ±{rows[0]['floor_rel_std']:.2f} in ratio units)")


# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
t0 = time.time()
CG_SCALES = (0.0, 1.0, 2.0, 4.0, 8.0)
cg_rows = gt.guidance_sweep(lambda s: ClassifierGuided(den_u, noisy_clf, s), CG_SCALES, labels, steps=STEPS, eta=ETA)
report(cg_rows, "s")
print(f"({time.time() - t0:.0f} s)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the table.** At s = 0 the labels are ignored: these are the unconditional model's samples, so the
# accuracy is at chance (10 %) and the FD ratio is that of the unconditional model, far above the conditional
# model's in section 7 — on digits, knowing the label helps the network a lot. s = 1, Bayes' rule with a learned
# classifier, is not enough: the accuracy stays well short of 100 %, and the FD ratio does not improve. ADM reports
# the same for its unconditional ImageNet model (Section 4.3: at scale 1 the samples often did not look like the
# requested class) and scaled the gradients up. At larger s the accuracy reaches ~100 % and the FD ratio drops
# sharply — guidance steers the weak unconditional model away from its malformed digits — until, at the largest
# s, the shrinking within-class spread makes it rise again.

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
    cfg_rows[p_uncond] = gt.guidance_sweep(lambda w: ClassifierFree(den, w), W_SWEEP, labels, steps=STEPS, eta=ETA)
    print(f"p_uncond = {p_uncond}")
    report(cfg_rows[p_uncond], "w")
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
print(f"\nbest w with accuracy ≥ 99 %: w = {best['value']:g}, accuracy {best['accuracy']:.3f}, FD ratio {best['fd_ratio']:.2f}"
      f" -> quality target (≥ 99 %, FD ratio ≤ 1.5) met: {best['accuracy'] >= 0.99 and best['fd_ratio'] <= 1.5}")
ok_cg = [r for r in cg_rows if r["accuracy"] >= 0.99]
best_cg = min(ok_cg, key=lambda r: r["fd_ratio"]) if ok_cg else max(cg_rows, key=lambda r: r["accuracy"])
print(f"classifier guidance, best scale (lowest FD ratio at ≥ 99 %, else highest accuracy): s = {best_cg['value']:g}, "
      f"accuracy {best_cg['accuracy']:.3f}, FD ratio {best_cg['fd_ratio']:.2f} -> target (≥ 95 %) met: "
      f"{best_cg['accuracy'] >= 0.95}")

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
    wrong = gt.evaluate_samples(wrong_samples, labels)
    wrong["spread"] = gt.within_class_spread(wrong_samples, labels) / real_spread
    print(f"w = {w:g}, p_uncond = 0.1 | guided x̂_0 clipped: FD ratio {right['fd_ratio']:.2f}, spread "
          f"{right['spread']:.2f}, pixels at ±1 {at_the_limits(right['samples']):.0%} | only the two inner "
          f"predictions clipped: FD ratio {wrong['fd_ratio']:.2f}, spread {wrong['spread']:.2f}, pixels at ±1 "
          f"{at_the_limits(wrong_samples):.0%}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What reproduces, and what does not.** Read the two tables above against the paper's Table 1:
# - *Fidelity rises with w.* The paper's Inception Score increases monotonically with w; our label accuracy and
#   confidence rise from w = 0 and saturate near 100 % — digits are an easy ten-class problem, so they saturate
#   quickly.
# - *Diversity falls with w.* The FD ratio grows steadily with w, and the within-class spread shrinks from w = 0 to
#   w = 1–2: strong guidance collapses each class towards its most typical digits. This is the FID side of Table 1
#   (12.6 at w = 1 and 26.22 at w = 4, from 1.80 unguided). At w = 4 the spread rises again (printed above).
# - *Where the clip goes* matters at strong guidance. Clipping only the two inner predictions — the nearest wrong
#   answer — gives at w = 4 a clearly higher FD ratio (about 2.7 against 2.1) and a lower spread (0.79 against 0.87),
#   and drives more pixels to ±1 (about half, against under a third; real digits: 58 %, mostly their black
#   background). At w = 1 the two placements nearly agree (about 1.8 against 1.7).
# - *A little guidance helps FID* — **not reproduced here.** For p_uncond = 0.1 the paper's FID is better at w = 0.1
#   (1.55) than unguided (1.80), and grows beyond. Our FD ratio is lowest unguided or at w = 0.1 (the two differ by
#   less than the real-vs-real floor's spread printed under each table) and grows from w = 0.3 on. Our conditional
#   model is already good without guidance — about 99 % accuracy and an FD ratio below 1, i.e. as close to the test
#   digits as real training digits are at this n (the balanced batch of labels likely helps: the test split is
#   stratified by class, a random subset of training digits is not) — so there are few malformed digits left for a
#   little guidance to remove before the loss of diversity starts to cost.
# - *p_uncond 0.1 versus 0.2.* The paper finds the two alike (and both better than 0.5); compare the two digits
#   tables.
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

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Why classifier-free guidance won, and where it went
#
# - **No extra model.** Classifier guidance needs a second network trained on *noised* images — an off-the-shelf
#   classifier will not do, since p_t(y | x_t) must be right at every noise level (section 5's accuracy curve shows
#   how that classifier degrades with t). CFG needs only label dropout during training, at no cost in quality for
#   p_uncond ≈ 0.1–0.2.
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
# - Classifier guidance scales that term by s: ε̂ − s σ_t ∇ log p_φ. ADM's Algorithm 1 (mean shift s Σ g) and
#   Algorithm 2 (DDIM) are the same idea; the shifts differ by √a σ_s²/σ_t², which is 0 on the last step.
# - The guided score is the score of p_t(x) p_t(y | x)^s at every t, but guided DDPM does **not** sample
#   p(x) p(y | x)^s for s ≠ 1 when classes overlap; Langevin correctors at every level fix that (section 3).
# - Classifier-free guidance: ε̃ = (1 + w) ε_y − w ε_∅ is classifier guidance with scale 1 + w and the implicit
#   classifier −(ε_y − ε_∅)/σ_t; diffusers' guidance_scale is 1 + w.
# - On digits, w trades diversity for fidelity as in the CFG paper's Table 1 (section 7's tables and figure).
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
