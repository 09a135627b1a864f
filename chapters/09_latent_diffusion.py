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
# # 09 — Latent diffusion, and what "stable" means in Stable Diffusion
#
# *Diffusion models, from first principles* — chapter 09.
#
# **The papers.**
# - Robin Rombach, Andreas Blattmann, Dominik Lorenz, Patrick Esser, Björn Ommer, *High-Resolution Image Synthesis with
#   Latent Diffusion Models*, CVPR 2022, [arXiv:2112.10752](https://arxiv.org/abs/2112.10752) — "the LDM paper".
# - Diederik P. Kingma, Max Welling, *Auto-Encoding Variational Bayes*, ICLR 2014,
#   [arXiv:1312.6114](https://arxiv.org/abs/1312.6114) — the KL-regularised autoencoder.
# - Patrick Esser, Robin Rombach, Björn Ommer, *Taming Transformers for High-Resolution Image Synthesis* (VQGAN),
#   CVPR 2021, [arXiv:2012.09841](https://arxiv.org/abs/2012.09841) — the perceptual compression stage LDMs reuse.
# - Jonathan Ho, Chitwan Saharia, William Chan, David J. Fleet, Mohammad Norouzi, Tim Salimans, *Cascaded Diffusion
#   Models for High Fidelity Image Generation*, JMLR 2022, [arXiv:2106.15282](https://arxiv.org/abs/2106.15282).
# - Alex Nichol et al., *GLIDE: Towards Photorealistic Image Generation and Editing with Text-Guided Diffusion Models*,
#   ICML 2022, [arXiv:2112.10741](https://arxiv.org/abs/2112.10741).
# - Aditya Ramesh, Prafulla Dhariwal, Alex Nichol, Casey Chu, Mark Chen, *Hierarchical Text-Conditional Image
#   Generation with CLIP Latents* (DALL·E 2), [arXiv:2204.06125](https://arxiv.org/abs/2204.06125).
# - Chitwan Saharia et al., *Photorealistic Text-to-Image Diffusion Models with Deep Language Understanding* (Imagen),
#   NeurIPS 2022, [arXiv:2205.11487](https://arxiv.org/abs/2205.11487).
#
# **What you will learn**
# - why diffusion in pixel space wastes its compute on detail nobody sees, and the two-stage answer: a perceptual
#   autoencoder, then a DDPM on its latent grid;
# - the KL-regularised autoencoder: its loss from the evidence lower bound, the closed-form KL (checked by Monte Carlo),
#   and the rate–distortion trade-off its weight β sets (measured);
# - why Stable Diffusion multiplies its latents by 0.18215, and this course's own factor (checked: unit variance);
# - chapter 03's UNet on the latent grid, unconditional and with chapter 06's classifier-free guidance, sampled with
#   chapter 07's solvers, decoded and scored in pixel space, against the autoencoder's own floor;
# - a side-by-side cost table against a pixel-space model at the same resolution;
# - cross-attention conditioning on a token sequence (a prompt spelled in letters), at toy scale;
# - what the word "stable" does and does not mean, and where the text encoder, the diffusion model and the upsamplers
#   sit in GLIDE, DALL·E 2, Imagen, cascaded diffusion and Stable Diffusion.
#
# **Prerequisites**: chapter 00 (KL between Gaussians, reparameterisation), chapter 03 (DDPM), chapter 06 (classifier-free
# guidance), chapter 07 (DPM-Solver++).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where this sits
#
# On the course map latent diffusion is the last node: it changes *where* the diffusion runs, not *how*. Everything of
# chapters 03–08 carries over unchanged — the schedule, the ε-loss, the samplers, guidance — applied to the latents z of
# an autoencoder instead of the pixels x. The only new pieces are the autoencoder, the scale of its latents, and (for
# text) cross-attention.
#
# | | chapters 03–08 | this chapter |
# |---|---|---|
# | the diffused variable | x_0 = the image | z_0 = s · μ(x), the encoder's mean, scaled by s |
# | forward process | x_t = α_t x_0 + σ_t ε | z_t = α_t z_0 + σ_t ε (the same schedule) |
# | a sample | x_0 from the sampler | D(z_0 / s), the decoder applied once at the end |
# | time | t = n/T, n = 1..T | the same (the LDM paper also numbers steps 1..T) |

# %% slideshow={"slide_type": "skip"}
# %matplotlib inline
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils import samplers, solvers, viz
from utils.config import by_profile, start_chapter
from utils.course_map import show_course_map
from utils.data import downsample_ls, image_data, large_image_data, off_subspace, upsample
from utils.eval.metrics import compare, label_accuracy, mean_sd
from utils.exercises import ch09
from utils.gaussians import kl_normal, sum_features
from utils.guidance import ClassifierFree
from utils.lessons import ch07_solvers as fs
from utils.lessons import ch09_checks as ck
from utils.lessons import ch09_latent as L
from utils.lessons.ch09_lineage import draw_lineage
from utils.nets import CrossAttention, count_parameters
from utils.training.losses import diffusion_loss_fn
from utils.training.zoo import reverse_chain

profile, device, gen = start_chapter(seed=0)

# %% slideshow={"slide_type": "-"}
show_course_map("09")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Why compress first
#
# A DDPM's network is evaluated on every pixel, at every training step and every sampling step. The LDM paper's
# Figure 2 splits what a likelihood model spends its bits on into **perceptual** compression (imperceptible high-frequency
# detail, most of the bits) and **semantic** compression (the composition, which is what we care about). A diffusion
# model's weighted loss already de-emphasises the imperceptible part, "but gradients (during training) and the neural
# network backbone (training and inference) still need to be evaluated on all pixels" (Fig. 2's caption). The remedy:
# train an autoencoder once to remove the perceptual redundancy — mildly, f = 4 to 16 per side — and run the diffusion
# model on its latent grid, whose cost per network call falls roughly like 1/f².
#
# **The data of this chapter.** Compression needs images larger than 8×8. In the `cpu` and `smoke` profiles: the
# course's 1,797 digits **upsampled bilinearly to 32×32** (`large_image_data`, embedded, no download); in the `gpu`
# profile, MNIST 28×28 (7×7 latents at f = 4). What the choice implies: a 32×32 upsampled digit holds exactly the 64
# numbers of the 8×8 one — its 1,024 pixels are a fixed linear function U of them. That is the perceptual redundancy
# of natural images in its purest form: a perfect f = 4 autoencoder exists (its 8×8 latent can hold the digit), so the
# autoencoder's floor should be low, and a pixel-space model at 32×32 spends sixteen times the compute of chapter 03's
# on the same information. Real photographs are not so kind; the trade-off curve of section 3 is where that shows.
#
# **Scoring 32×32 images.** The course's FD ratio uses a classifier trained on 8×8 digits. We score a 32×32 image
# through D = U⁺ = (UᵀU)⁻¹Uᵀ (`downsample_ls`), the least-squares inverse of the upsampling: the 8×8 image whose
# upsampling is closest to it. Then upsampled real digits score *exactly* as the 8×8 digits do (the same floor as
# chapters 03–08), and FD ratios here are comparable with those chapters'. What D discards — the part of a sample
# outside the 64-dimensional subspace of upsampled images — no 8×8 score can see; we report its size separately
# (`off_subspace`, 0 for real data). In the `gpu` profile the MNIST classifier scores 28×28 directly.
#
# **Check.** D U y = y for 8×8 digits. The nearest wrong answer: 4×4 average pooling, the obvious "downsample".

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
small = image_data("cpu" if profile == "gpu" else profile)
y8 = small.test_x[:200]
avg_pool = lambda x: torch.nn.functional.avg_pool2d(x, 4)  # noqa: E731
print("least-squares inverse undoes the upsampling (D U y = y):", ck.inverts_upsampling(downsample_ls, y8, upsample))
print("4×4 average pooling rejected:", not ck.inverts_upsampling(avg_pool, y8, upsample))

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
data = large_image_data()
print(data, "  pixel std", f"{data.train_x.std():.3f}")
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
viz.show_images(small.train_x[:16] if profile != "gpu" else data.train_x[:16], nrow=8, ax=axes[0], title="8×8 digits")
viz.show_images(data.train_x[:16], nrow=8, ax=axes[1], title=f"{data.name}: {data.image_size}×{data.image_size}")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The first stage: a KL-regularised autoencoder
#
# **From the evidence lower bound.** A latent-variable model p(x) = ∫ p(x | z) p(z) dz with p(z) = N(0, I) and an
# encoder q(z | x) = N(μ(x), diag s²(x)) has, for every x (Kingma & Welling 2014, Eq. 3),
#
# $$\log p(x) \;\ge\; \mathbb E_{q(z\mid x)}\big[\log p(x\mid z)\big] - \mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big).$$
#
# (Write log p(x) = E_q[log p(x, z)/q(z | x)] + KL(q(z | x) ‖ p(z | x)), and drop the last, non-negative term.) With a
# Gaussian decoder p(x | z) = N(D(z), v I), −log p(x | z) = ‖x − D(z)‖²/(2v) + const, so maximising the bound is
# minimising ‖x − D(z)‖² + 2v · KL. We keep the weight free and call it β; divided by the number of pixels,
#
# $$L_{AE} = \mathbb E_x\Big[\,\underbrace{\|x - D(z)\|^2}_{\text{distortion}} + \beta\,\underbrace{\mathrm{KL}(q(z\mid x)\,\|\,N(0, I))}_{\text{rate}}\Big]\big/\,\#\text{pixels},
#   \qquad z = \mu(x) + s(x)\odot\varepsilon$$
#
# (the reparameterisation of chapter 00 makes it differentiable in μ and s). The LDM paper's "KL-reg." autoencoders
# (its Sec. 3.1) use the same regulariser with a small weight, next to a perceptual and an adversarial loss (Esser et
# al.'s VQGAN recipe) that 32×32 digits do not need.
#
# **The KL in closed form.** For one coordinate, KL(N(μ, s²) ‖ N(0, 1)) = E[log N(z; μ, s²) − log N(z; 0, 1)]
# = −½ log s² − ½ + ½ (s² + μ²) (use E[(z − μ)²] = s² and E[z²] = s² + μ²), summed over the latent's coordinates —
# chapter 00's `kl_normal(μ, s², 0, 1)`.
#
# **Check.** The closed form against a Monte Carlo average of log q − log p (4,000 draws, within 4 standard errors),
# for 8 random posteriors of the shape of an 8×8×2 latent. The nearest wrong answer: the standard deviation s put where
# the variance s² belongs.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(1)
mu_chk = torch.randn(8, 2, 8, 8, generator=g, dtype=torch.float64)
logvar_chk = torch.randn(8, 2, 8, 8, generator=g, dtype=torch.float64) - 1.0
zeros, ones = torch.zeros_like(mu_chk), torch.ones_like(mu_chk)
kl_right = sum_features(kl_normal(mu_chk, logvar_chk.exp(), zeros, ones))
kl_std = sum_features(kl_normal(mu_chk, (0.5 * logvar_chk).exp(), zeros, ones))
print("closed-form KL = Monte Carlo:", ck.kl_matches_monte_carlo(kl_right, mu_chk, logvar_chk))
print("s in place of s² rejected:", not ck.kl_matches_monte_carlo(kl_std, mu_chk, logvar_chk))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The network** (`utils.nets.Autoencoder`): per level a stride-2 convolution and a residual block; the encoder ends
# in 2c channels (μ and log s²), the decoder mirrors it with transposed convolutions. f = 4 with c = 2 channels: a
# 32×32 image becomes an 8×8×2 latent (128 numbers for 1,024 pixels — and for the 64 numbers the digit really holds).
# Trained through `cached_train` with β = 10⁻⁴ (`L.autoencoder()`); the shipped weights load in a second.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
ae, res_ae = L.autoencoder()
print(f"autoencoder f = {ae.factor}, c = {ae.latent_channels}: {L.n_params(ae):,} parameters, "
      f"{'loaded' if res_ae.loaded else 'trained'} ({res_ae.seconds:.0f} s of training, {len(res_ae.losses)} steps)")
x_show = data.test_x[:16]
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8))
viz.plot_loss(res_ae.losses, ax=axes[0], smooth=20, title="L_AE")
viz.show_images(x_show, nrow=8, ax=axes[1], title="test images")
viz.show_images(L.reconstruct(ae, x_show), nrow=8, ax=axes[2], title="D(μ(x))")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Rate against distortion: the KL weight
#
# β prices one nat of rate in units of squared error. Four autoencoders, β ∈ {10⁻⁴, 10⁻³, 10⁻², 10⁻¹}, identical
# otherwise; on the test split: distortion (mean squared error per pixel of D(μ(x))) and rate (the KL in nats per
# image); and the FD ratio of the reconstructions of k = 3 random subsets of n training images (the FD ratio's floor
# is made of such subsets, unreconstructed) — the quality no latent model built on that autoencoder can beat.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
K = 3
n_fd = by_profile(smoke=32, cpu=300, gpu=1000)
sweep = {b: L.autoencoder(kl_weight=b) for b in L.KL_WEIGHTS}
rd = {}
for b, (model, res) in sweep.items():
    rd[b] = L.rate_distortion_point(model, data.test_x)
    rd[b]["fd"] = ck.reconstruction_sets(lambda x, m=model: L.reconstruct(m, x), data.train_x, K, n_fd)
    rd[b]["std"] = float(L.encode(model, data.train_x)[0].std())
print(f"{'β':>8s}{'MSE / pixel':>14s}{'KL nats / image':>18s}{'KL / latent dim':>17s}{'latent std':>12s}"
      f"{'recon. FD ratio':>20s}")
for b, r in rd.items():
    print(f"{b:>8g}{r['mse']:>14.5f}{r['kl']:>18.1f}{r['kl_per_dim']:>17.2f}{r['std']:>12.3f}{'':>4s}{mean_sd(r['fd'])}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
ax = axes[0]
ax.plot([rd[b]["kl"] for b in rd], [rd[b]["mse"] for b in rd], "o-")
for b in rd:
    ax.annotate(f"β = {b:g}", (rd[b]["kl"], rd[b]["mse"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
ax.set_xlabel("rate: KL(q(z|x) ‖ N(0, I)), nats per image")
ax.set_ylabel("distortion: MSE per pixel")
ax.set_yscale("log")
ax.set_title("rate–distortion, f = 4")
rows = torch.cat([x_show[:8]] + [L.reconstruct(sweep[b][0], x_show[:8]) for b in rd])
viz.show_images(rows, nrow=8, ax=axes[1], title="test images, then reconstructions for β = " +
                ", ".join(f"{b:g}" for b in rd))
fig.tight_layout()
viz.save_figure(fig, "ch09_rate_distortion.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# The trade-off is there, and mild. From β = 10⁻⁴ to 10⁻¹ the rate falls from 563 to 86 nats per image (4.4 to 0.67
# per latent number) while the distortion rises from 3.1·10⁻⁴ to 8.8·10⁻⁴ per pixel, and the latents contract (std
# 1.33 → 0.66: the KL pulls them towards N(0, I) and away from each other's detail). The reconstructions' FD ratio does
# not move (0.78–0.79): every one of these autoencoders keeps what the classifier sees. That is the upsampled data
# speaking — 64 numbers per image fit in 128 latent numbers at any of these weights. Below 1 means that n
# reconstructions of training images sit at least as close to the test set as n raw training images do (they are a
# little smoother); read it as "indistinguishable at n = 300". On photographs the same sweep costs visible detail,
# which is why the LDM paper keeps the KL weight small and relies on perceptual and adversarial losses for sharpness.
# The latent models below use β = 10⁻⁴.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The scale factor: why Stable Diffusion multiplies its latents by 0.18215
#
# The DDPM schedule was designed for data of roughly unit scale. Its forward process on latents z_0 scaled by s,
#
# $$z_t = \alpha_t\, s z_0 + \sigma_t\,\varepsilon, \qquad \mathrm{SNR}(t) = \frac{\alpha_t^2\, s^2\,\mathrm{Var}(z_0)}{\sigma_t^2}
#   = s^2\,\mathrm{Var}(z_0)\,\frac{\bar\alpha_t}{1-\bar\alpha_t},$$
#
# so the latents' variance multiplies the signal-to-noise ratio at *every* t: log-SNR shifts by log(s² Var z_0), which is
# chapter 03's schedule moved along the time axis. Latents with standard deviation 5.5 keep an SNR 30 times the schedule's
# intended one at every step — the early, high-noise steps that should decide the composition see an image that is still
# clearly visible, and the sampler's last steps are spent on noise too small to matter. The LDM paper discusses this
# effect of the latent space's scale on the signal-to-noise ratio (its Sec. 4.3.2) and, for its KL-regularised
# autoencoders, rescales the latents by an estimate of their standard deviation. The rule is s = 1/std(z_0), so that
# s z_0 has unit variance, like the noise it is mixed with.
#
# **Stable Diffusion's number.** The released v1 configuration sets `scale_factor: 0.18215` (and `diffusers` calls it
# `scaling_factor`): the reciprocal of the standard deviation measured on its f = 8 KL autoencoder's latents,
# 1/0.18215 = 5.49. Nothing else about 0.18215 is special: another autoencoder needs another factor (SDXL's is 0.13025).
#
# **Ours.** s = 1/std of the training split's latents μ(x) (all coordinates together). **Check.** The scaled latents have
# unit variance (within 0.05). The nearest wrong answer: no scaling (s = 1), which the LDM paper's code base would
# run without complaint.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
z_train = L.encode(ae, data.train_x)[0]
scale = L.latent_scale(z_train)
print(f"latents {tuple(z_train.shape[1:])}: std {z_train.std():.3f}, mean {z_train.mean():+.3f};  "
      f"this course's scale factor s = 1/std = {scale:.4f}  (Stable Diffusion v1: 0.18215 = 1/{1 / 0.18215:.2f})")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("scaled latents s·z have unit variance:", ck.unit_variance(scale * z_train))
print("no scaling (s = 1) rejected:", not ck.unit_variance(z_train))
print(f"identity, not a check: Stable Diffusion's s = 0.18215 divides out a latent std of 1/s = {1 / 0.18215:.2f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Latent diffusion: chapter 03's UNet on the latent grid
#
# The second stage is chapter 03's DDPM verbatim — linear schedule, T = 1000, ε-prediction, L_simple — with the
# training data replaced by the scaled latents s·μ(x) (8×8×2 in the `cpu` profile). The network is chapter 03's UNet
# (16 channels, two levels) with two input channels; at 8×8 it costs what chapter 03's model costs. Sampling: draw
# z_T ~ N(0, I) on the latent grid, run any sampler of chapters 03–07, and decode **once**: x = D(z_0 / s).
#
# **The algorithm, inline** (the LDM paper's Eq. 2 for training; its sampling is chapter 04's DDIM on the latents),
# then checked against `L.latent_ddpm`'s loss and the library's DDIM with the same draws.

# %% slideshow={"slide_type": "-"}
def ldm_loss_inline(net, encoder_mean, x, scale, schedule, generator):
    """One batch of L_LDM = E ‖ε − ε_θ(z_t, t)‖², z_0 = s·μ(x), t = n/T, n ~ U{1..T}."""
    z0 = scale * encoder_mean(x)                                       # first stage: encode (no gradient)
    n = torch.randint(1, schedule.T + 1, (x.shape[0],), generator=generator)
    t = (n.double() / schedule.T).float()
    eps = torch.randn(z0.shape, generator=generator)
    a, s = schedule.alpha(t).view(-1, 1, 1, 1), schedule.sigma(t).view(-1, 1, 1, 1)
    return (net(a * z0 + s * eps, t) - eps).pow(2).mean()             # chapter 03's L_simple on z


def ldm_sample_inline(denoiser, decoder, z, ts, scale):
    """DDIM (η = 0) on the latents from z at ts[0] down to 0, then decode once."""
    for t, t_next in zip(ts[:-1], ts[1:]):
        eps, z0_hat = denoiser.predict(z, t)
        a_next, s_next = denoiser.marginal(t_next)
        z = a_next * z0_hat + s_next * eps                             # DDIM's deterministic step
    return decoder(z / scale)                                          # second stage: decode


# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
ldm = L.latent_ddpm()
den = ldm.denoiser
print(f"latent DDPM on {ldm.shape}: {count_parameters(den.net):,} parameters, "
      f"{'loaded' if ldm.results[-1].loaded else 'trained'} ({ldm.seconds:.0f} s of training in "
      f"{len(ldm.results)} stages, {sum(len(r.losses) for r in ldm.results)} steps); scale s = {ldm.scale:.4f}")

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
x_b = data.train_x[:64].to(device)
encoder_mean = lambda x: ae.encode(x)[0]  # noqa: E731
with torch.no_grad():
    inline = ldm_loss_inline(den.net, encoder_mean, x_b, ldm.scale, den.schedule, torch.Generator().manual_seed(3))
    library = diffusion_loss_fn(den.schedule, T=1000)(den.net, ldm.scale * encoder_mean(x_b), None,
                                                      torch.Generator().manual_seed(3))
torch.testing.assert_close(inline, library)
z_T = torch.randn(16, *ldm.shape, generator=torch.Generator().manual_seed(4)).to(device)
ts10 = samplers.time_grid(10, T=1000).to(device)
with torch.no_grad():
    torch.testing.assert_close(ldm_sample_inline(den, ae.decode, z_T, ts10, ldm.scale),
                               ae.decode(samplers.sample_ddim(den, z_T, ts10) / ldm.scale), atol=1e-4, rtol=1e-4)
print("inline latent loss = library loss; inline latent DDIM + decode = library: True")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Samples and their score.** k = 3 paired sets of z_T (n = 300 in the `cpu` profile), chapter 07's DPM-Solver++(2M)
# at 10 network calls, decoded, scored in pixel space (section 1). Two references: the **autoencoder's floor** — the FD
# ratio of reconstructions D(μ(x)) of real training images (section 3), which a latent model can approach but not
# beat, since every sample it makes is some D(z). (Chapter 03's 8×8 model, about 2 at 100 steps, is a reference in scale only: it learned
# the same digits at 8×8, directly.) The off-subspace size says how much of each sample the score cannot see (0 for real
# data).

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
NFE = by_profile(smoke=4, cpu=10, gpu=20)
ts_fd = samplers.time_grid(NFE, T=1000)


def sample_latent(model, z, y=None, w=None):
    """Images (N, C, H, W) from start latents z with DPM-Solver++(2M) at NFE steps (guided when w is given)."""
    m = model.denoiser if w is None else ClassifierFree(model.denoiser, w)
    with torch.no_grad():
        out = solvers.sample_dpmpp_2m(m, z.to(device), ts_fd.to(device), y=None if y is None else y.to(device))
    return model.to_images(out)


def sampling_seconds(model, n=by_profile(smoke=8, cpu=100, gpu=100)):
    """Wall-clock seconds to draw n images (network calls and decoding), one run."""
    z = torch.randn(n, *model.shape, generator=torch.Generator().manual_seed(99))
    start = time.perf_counter()
    sample_latent(model, z)
    return time.perf_counter() - start


sets = {"latent": fs.x_sets(K, n_fd, ldm.shape)}
fd = {"latent, f = 4": ck.fd_sets(lambda z, i: sample_latent(ldm, z), sets["latent"])}
floor_ae = rd[L.KL_MAIN]["fd"]
imgs = sample_latent(ldm, sets["latent"][0][:300])
print(f"latent DDPM, DPM-Solver++(2M), {NFE} NFE: FD ratio {mean_sd(fd['latent, f = 4'])}")
print(f"autoencoder floor (reconstructions of real images): {mean_sd(floor_ae)}")
print("latent model vs its floor:", compare(fd["latent, f = 4"], floor_ae, names=("samples", "floor"))["text"])
print(f"off-subspace rms: samples {off_subspace(imgs).mean():.4f}, real {off_subspace(data.test_x).mean():.4f}"
      if profile != "gpu" else "")
fig, ax = plt.subplots(figsize=(6, 6))
viz.show_images(imgs[:64], nrow=8, ax=ax, title=f"latent DDPM samples, {NFE} NFE, decoded")
viz.save_figure(fig, "ch09_samples.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# The unconditional latent model reaches an FD ratio of 2.34 ± 0.43 at 10 network calls after 1,500 steps (112 s of
# training), beyond noise above its autoencoder's floor (0.78): here the floor does not bind, the diffusion model is
# what limits quality — which is the LDM paper's design goal for the first stage (mild compression, nearly lossless
# reconstructions). The samples carry a little energy outside the subspace of upsampled digits (rms 0.015 per pixel,
# against pixel values of order 1): faint texture that the 8×8 score cannot see, a reminder of what a decoder can add.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Class-conditional, with chapter 06's classifier-free guidance
#
# The same UNet with a label embedding, labels dropped to ∅ with probability 0.1 during training (`conditioning="label"`);
# sampled with `ClassifierFree(denoiser, w)`, ε̃ = (1 + w) ε(z, t, y) − w ε(z, t, ∅) — on the latents, exactly as in
# pixels (diffusers' `guidance_scale` is 1 + w). Label accuracy by the feature classifier, and FD ratio, for w ∈ {0, 1, 3}.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
ldm_c = L.latent_ddpm(conditioning="label")
print(f"class-conditional latent DDPM: {'loaded' if ldm_c.results[-1].loaded else 'trained'} "
      f"({ldm_c.seconds:.0f} s of training)")
y_sets = [torch.arange(n_fd) % 10 for _ in range(K)]
cfg_rows = {}
for w in (0.0, 1.0, 3.0):
    ratios, accs = [], []
    for i, z in enumerate(sets["latent"]):
        out = sample_latent(ldm_c, z, y=y_sets[i], w=w)
        ratios.append(ck.fd_of(out, n_fd))
        accs.append(label_accuracy(ck.score_images(out), y_sets[i]))
    cfg_rows[w] = (ratios, accs)
    print(f"w = {w:.0f}: FD ratio {mean_sd(ratios)}, label accuracy {np.mean(accs):.3f}")
print("w = 1 vs w = 0:", compare(cfg_rows[1.0][0], cfg_rows[0.0][0], names=("w = 1", "w = 0"))["text"])
fig, ax = plt.subplots(figsize=(7, 3.6))
n_show = min(40, n_fd)
viz.show_images(sample_latent(ldm_c, sets["latent"][0][:n_show], y=torch.arange(n_show) % 10, w=1.0), nrow=10, ax=ax,
                title="class-conditional latent DDPM, w = 1 (columns: 0–9)")
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Guidance acts on latents as it did on pixels in chapter 06: w = 1 raises label accuracy from 0.89 to 0.98 and lowers
# the FD ratio from 0.63 to 0.35 (beyond noise); w = 3 reaches 0.997 accuracy and gives some FD back (0.56). Two
# remarks on these numbers. They are far below the unconditional model's 2.34: the labels are balanced here (each digit
# 30 times per set), so the class statistics match the test split by construction. And they are below 1 and below the
# autoencoder's floor: the floor bounds a model that reproduces the data distribution through the decoder; guided
# samples come from a sharpened distribution that the Fréchet distance of Gaussian-fitted features can rate closer to
# the test set than real training images are. Read < 1 as "indistinguishable at this n", not "better than real".

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Side by side with a pixel-space model at the same resolution
#
# The LDM paper's argument is a cost argument. The same UNet recipe, trained on the 32×32 pixels directly
# (`factor=1`), against the latent pipeline: parameters, FLOPs of one network call (torch's counter; 2 per multiply–add),
# training compute and seconds, seconds to sample 100 images at 10 NFE (decoding included), and FD ratio over k = 3
# paired sets.
# Training budgets: the latent DDPM runs 1,500 steps of batch 64; the pixel model 150 steps of the same batch, which
# already costs about as many FLOPs as the autoencoder and the latent DDPM together (the table shows it).
#
# **Check first — a FLOP by hand.** One 3×3 convolution, 16 → 32 channels, on an 8×8 output: 2 · C_in · k² · C_out · H · W
# against the counter. The nearest wrong answer: multiply–adds counted once (the factor 2 lost).

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
conv = torch.nn.Conv2d(16, 32, 3, padding=1, bias=False)
counted = L.count_flops(conv, torch.zeros(1, 16, 8, 8))
print("2·C_in·k²·C_out·H·W = counted FLOPs:", ck.flops_match(ck.conv_flops(16, 32, 3, 8, 8), counted))
print("multiply–adds without the 2 rejected:", not ck.flops_match(ck.conv_flops(16, 32, 3, 8, 8) // 2, counted))

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
pixel = L.latent_ddpm(factor=1)
sets["pixel"] = fs.x_sets(K, n_fd, pixel.shape)
fd["pixel, f = 1"] = fs.cached_scores(f"ch09-f1-{sum(len(r.losses) for r in pixel.results)}", pixel.denoiser.net,
                                      dict(k=K, n=n_fd, nfe=NFE, v=1),
                                      lambda: ck.fd_sets(lambda z, i: sample_latent(pixel, z), sets["pixel"]))[0]


def cost_row(name, model, sample_seconds, ratios):
    """One row of the side-by-side table (FLOPs of a network call at batch 1; training FLOPs ≈ 3 × forward × samples)."""
    c, size = model.shape[0], model.shape[-1]
    call = L.count_flops(model.denoiser.net, torch.zeros(1, c, size, size, device=device), torch.full((1,), 0.5, device=device))
    batch = L.latent_config()[1].batch_size
    train_flops = 3 * call * batch * sum(len(r.losses) for r in model.results)
    params, seconds, decode = count_parameters(model.denoiser.net), model.seconds, 0
    if model.ae is not None:
        ae_call = L.count_flops(model.ae, torch.zeros(1, *data.train_x.shape[1:], device=device))
        train_flops += 3 * ae_call * L.ae_config()[1].batch_size * len(res_ae.losses)
        params += L.n_params(model.ae)
        seconds += res_ae.seconds
        decode = L.count_flops(model.ae.decoder, torch.zeros(1, *model.shape, device=device))
    return dict(name=name, params=params, call=call, decode=decode, train_flops=train_flops, train_s=seconds,
                sample_s=sample_seconds, fd=ratios)


rows = [cost_row(f"latent (f = 4): AE + UNet on {'×'.join(map(str, ldm.shape[::-1]))}", ldm, sampling_seconds(ldm),
                fd["latent, f = 4"]),
        cost_row(f"pixel (f = 1): UNet on {data.image_size}×{data.image_size}", pixel, sampling_seconds(pixel),
                 fd["pixel, f = 1"])]
print(f"{'':36s}{'params':>9s}{'MFLOP/call':>12s}{'decode MFLOP':>14s}{'train TFLOP':>13s}{'train s':>9s}"
      f"{'100 img s':>10s}   FD ratio (k = 3, n = {n_fd})")
for r in rows:
    print(f"{r['name']:36s}{r['params']:>9,d}{r['call'] / 1e6:>12.2f}{r['decode'] / 1e6:>14.2f}"
          f"{r['train_flops'] / 1e12:>13.2f}{r['train_s']:>9.0f}{r['sample_s']:>10.1f}   {mean_sd(r['fd'])}")
print(f"one network call costs {rows[1]['call'] / rows[0]['call']:.1f}× more in pixels")
print("latent vs pixel:", compare(fd["latent, f = 4"], fd["pixel, f = 1"], names=("latent", "pixel"))["text"])

# %% [markdown] slideshow={"slide_type": "-"}
# The table makes the paper's argument with measured numbers. One network call on the 8×8×2 latent costs 6.5 MFLOP,
# one on the 32×32 pixels 103 MFLOP (15.8×); decoding adds 5.5 MFLOP once per image, less than one network call. At
# about equal training compute (3.2 TFLOP for the autoencoder and the latent DDPM together, 3.0 TFLOP for the pixel
# model's 150 steps) the latent model makes digits (FD ratio 2.34 ± 0.43) and the pixel model does not yet (30.6 ±
# 2.1): "latent better", beyond noise. Sampling 100 images took 0.2–0.5 s in latent space and 1.3–5 s in pixels
# (six runs, on a machine whose pace changes from hour to hour): five to sixteen times less, around the FLOP ratio of
# about 15 at 10 calls with decoding (10 × 6.5 + 5.5 against 10 × 103 MFLOP); single runs of a few seconds move with
# the machine's load. In training
# *seconds* the latent pipeline was slower here (175 s against 118 s): small convolutions on tiny grids run at fewer
# FLOP per second on a CPU, and these seconds were measured on a shared machine (FLOPs are exact, seconds vary with
# load). What the table does not say: given 16 times the compute per step, the pixel model would improve — the paper's
# claim, and ours, is about quality per unit of compute.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Cross-attention: conditioning on a sequence of tokens
#
# A label is one token; a prompt is many. The LDM paper conditions its UNet on any sequence through **cross-attention**
# (its Sec. 3.3, Eq. 3): a domain-specific encoder τ_θ maps the prompt y to τ_θ(y) ∈ R^{L×E}, and at a layer with feature
# map φ(z_t) (flattened to HW rows of C numbers)
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt d}\Big) V,\qquad
#   Q = W_Q\,\varphi(z_t),\quad K = W_K\,\tau_\theta(y),\quad V = W_V\,\tau_\theta(y),$$
#
# added back to the feature map: each image position takes a weighted average of the token values, weighted by how well
# its query matches each token's key (÷√d keeps the logits' variance near 1 for unit-variance queries and keys).
#
# **Check.** Eq. 3 written out for one head against `utils.nets.CrossAttention` on random inputs. The nearest wrong
# answer: the logits without the 1/√d.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
xattn = CrossAttention(channels=16, context_dim=8, head_dim=16)  # one head of d = 16
torch.nn.init.normal_(xattn.proj.weight, std=0.2)
feat, ctx = torch.randn(2, 16, 4, 4), torch.randn(2, 5, 8)


def cross_attention_inline(layer, x, context, root_d=True):
    """Eq. 3 for one head: x (B, C, H, W) attends to context (B, L, E); residual and output projection as the layer."""
    B, C, H, W = x.shape
    phi = layer.norm(x).flatten(2).transpose(1, 2)                      # φ(z_t): (B, HW, C)
    q = layer.q(phi)                                                    # Q = W_Q φ
    k, v = layer.kv(context).chunk(2, dim=-1)                           # K = W_K τ(y), V = W_V τ(y)
    logits = q @ k.transpose(1, 2) / (C ** 0.5 if root_d else 1.0)    # (B, HW, L)
    out = torch.softmax(logits, dim=-1) @ v                             # each position: a mix of token values
    return x + layer.proj(out).transpose(1, 2).reshape(B, C, H, W)


with torch.no_grad():
    ref = xattn(feat, ctx)
    print("Eq. 3 inline = CrossAttention:", ck.attention_matches(cross_attention_inline(xattn, feat, ctx), ref))
    print("without 1/√d rejected:", not ck.attention_matches(cross_attention_inline(xattn, feat, ctx, False), ref))

# %% [markdown] slideshow={"slide_type": "subslide"}
# **A prompt at toy scale.** The prompt is the digit's name spelled in letters — "seven" is the five tokens s, e, v, e,
# n (a..z → 1..26, padded with 0; the empty prompt, all padding, is ∅). τ_θ is a token embedding with learned positions
# and one transformer layer (`TokenEncoder`), trained jointly with the UNet as in the LDM paper (where, for
# text-to-image, τ_θ is a transformer too); `CrossAttentionUNet` has a cross-attention layer after each residual block.
# The network never sees the label: to draw a seven it must read s-e-v-e-n (and tell it from s-i-x, which shares its
# first letter). Classifier-free guidance with the empty prompt, w = 1.

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
ldm_p = L.latent_ddpm(conditioning="prompt")
print(f"prompt-conditioned latent DDPM: {count_parameters(ldm_p.denoiser.net):,} parameters, "
      f"{'loaded' if ldm_p.results[-1].loaded else 'trained'} ({ldm_p.seconds:.0f} s of training)")
prompts = L.spell(L.WORDS)
acc_p, fd_p = [], []
for i, z in enumerate(sets["latent"]):
    out = sample_latent(ldm_p, z, y=prompts[y_sets[i]], w=1.0)
    acc_p.append(label_accuracy(ck.score_images(out), y_sets[i]))
    fd_p.append(ck.fd_of(out, n_fd))
print(f"prompt → digit, w = 1: label accuracy {np.mean(acc_p):.3f} (chance 0.1), FD ratio {mean_sd(fd_p)}")
print(f"class-label model, w = 1: label accuracy {np.mean(cfg_rows[1.0][1]):.3f}")
fig, ax = plt.subplots(figsize=(7, 3.6))
viz.show_images(sample_latent(ldm_p, sets["latent"][1][:n_show], y=prompts[torch.arange(n_show) % 10], w=1.0), nrow=10,
                ax=ax,
                title='prompts "zero" … "nine" (columns), w = 1')
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# The prompt model reads its prompts: label accuracy 0.987 at w = 1 (the label-embedding model: 0.980), FD ratio
# 0.46 ± 0.05, with 66 k parameters against the label model's 158 k. Nothing in it is specific to ten words: the same
# layers take any token sequence, which is how the LDM design goes from this toy to CLIP's text tokens in Stable
# Diffusion.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. What "stable" means in Stable Diffusion
#
# The question has three parts, and only two of them have documented answers.
#
# **What the LDM paper calls its models.** Nowhere "stable". The paper names its models *LDM-f* by downsampling factor
# (LDM-1 … LDM-32 in its Fig. 6; LDM-4, LDM-8 in its tables), and calls its first stages "KL-reg." and "VQ-reg."
# autoencoders (Sec. 3.1). Its text-to-image model is a 1.45B-parameter KL-regularised LDM conditioned on text and
# trained on LAION-400M (Sec. 4.3.1).
#
# **Where the name comes from.** *Stable Diffusion* is the name of a later model of the same design, released in
# August 2022. The CompVis repository that released the v1 weights describes it as "a latent text-to-image diffusion
# model", trained "thanks to a generous compute donation from Stability AI and support from LAION" on 512×512 images from
# a subset of LAION-5B, with "a frozen CLIP ViT-L/14 text encoder", "its 860M UNet and 123M text encoder", and an
# f = 8 autoencoder ("Stable Diffusion v1 refers to a specific configuration"); the README credits "a collaboration with
# Stability AI and Runway", and the model card names Robin Rombach and Patrick Esser as its developers. Stability AI
# announced the public release of the weights on 22 August 2022. The shared prefix of "Stable Diffusion" and "Stability AI" is a matter of record;
# why the model was given that name is not explained in the paper, the repository or the model card, and this course
# does not guess. In particular, **"stable" is not a technical property** — not a stability of training, of the
# sampler, or of an ODE — that any of these documents claims.
#
# **What technically makes the system practical** — each piece measured in this chapter:
#
# | ingredient | where from | what it buys | here |
# |---|---|---|---|
# | perceptual compression (f = 8 KL autoencoder) | LDM paper Sec. 3.1; VQGAN's losses | network calls on 64×64×4 instead of 512×512×3 (48× fewer numbers) | sections 2–6: the cost table |
# | the latent scale factor | LDM paper Sec. 4.3.2 | the schedule's SNR means what it was designed to mean | section 4 |
# | cross-attention conditioning | LDM paper Sec. 3.3, Eq. 3 | any token sequence (CLIP's text tokens) steers every layer | section 7 |
# | classifier-free guidance | Ho & Salimans 2022 (chapter 06) | prompt adherence at inference, no classifier | section 5 |
# | fast ODE solvers | chapter 07 (PNDM/PLMS, DDIM, DPM-Solver) | 20–50 network calls instead of 1,000 | all sampling here: 10 NFE |
#
# **The lineage.** Where the text encoder, the diffusion model(s) and the upsamplers sit. The pixel-space systems
# (cascaded diffusion, GLIDE, DALL·E 2, Imagen) generate a 64×64 (or 32×32) image and then *upsample it with further
# diffusion models* — the cascade is their answer to the cost of pixels. Stable Diffusion replaces the cascade with one
# diffusion model on a 64×64×4 latent and a decoder.

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(15, 7.2))
draw_lineage(ax)
viz.save_figure(fig, "ch09_lineage.png", dpi=90)
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Reading the rows: cascaded diffusion (Ho et al. 2022) conditions each super-resolution model on the lower-resolution
# image, corrupted during training ("conditioning augmentation", their Sec. 3) so that the next stage tolerates the
# previous stage's mistakes. GLIDE trains its text transformer together with a 64×64 diffusion model and guides it
# with classifier-free guidance; DALL·E 2 inserts a *prior* that turns CLIP's text embedding into a CLIP image embedding,
# and decodes that with a GLIDE-like diffusion model and two upsamplers; Imagen shows that a large *frozen* text-only
# encoder (T5-XXL) is enough, with two super-resolution diffusion models. Stable Diffusion combines the frozen text
# encoder (CLIP's) and cross-attention with the LDM paper's latent space instead of a cascade.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Reproduce the paper: quality against training for each downsampling factor, in miniature
#
# The LDM paper's Fig. 6 (Fig. 5 of the CVPR version) trains class-conditional LDM-f on ImageNet for f ∈ {1, 2, 4, 8, 16,
# 32}, "over 2M train steps", all "on a single NVIDIA A100 with the same computational budget", and plots FID and
# Inception Score against training progress. Its findings, from the caption: "Pixel-based LDM-1 requires substantially
# larger train times compared to models with larger downsampling factors"; "Too much perceptual compression as in
# LDM-32 limits the overall sample quality"; its Sec. 4.1 places the balance at LDM-4 to LDM-16. (No FID values are
# copied here: the figure gives curves, not a table.)
#
# Our miniature on 32×32 digits: f ∈ {1, 2, 4, 8} — latents 32×32×1 (pixels), 16×16×1, 8×8×2, 4×4×4 — each an
# autoencoder of section 2's design and chapter 03's UNet, unconditional, FD ratio (k = 3, 10 NFE) at two training
# milestones; f = 1's steps cost 16 times f = 4's, so it is measured at 50 and 150 steps, the others at 500 (and 1,500).
# Quality is plotted against training steps and against training FLOPs.

# %% slideshow={"slide_type": "subslide"} tags=["nbval-ignore-output"]
F_MODELS = {f: {1: pixel, 4: ldm}.get(f) or L.latent_ddpm(factor=f) for f in L.factors()}
f_rows = {}
for f, model in F_MODELS.items():
    shape_sets = fs.x_sets(K, n_fd, model.shape)
    for k_stage in range(len(model.results)):
        staged = L.stage_model(model, k_stage)
        steps = sum(len(r.losses) for r in staged.results)
        ratios = fs.cached_scores(f"ch09-f{f}-{steps}", staged.denoiser.net, dict(k=K, n=n_fd, nfe=NFE, v=1),
                                  lambda: ck.fd_sets(lambda z, i: sample_latent(staged, z), shape_sets))[0]
        c, size = model.shape[0], model.shape[-1]
        call = L.count_flops(staged.denoiser.net, torch.zeros(1, c, size, size, device=device),
                             torch.full((1,), 0.5, device=device))
        f_rows[(f, steps)] = dict(ratios=ratios, tflops=3 * call * L.latent_config()[1].batch_size * steps / 1e12)
recon = {f: ck.reconstruction_sets(lambda x, m=m: L.reconstruct(m.ae, x), data.train_x, K, n_fd)
         for f, m in F_MODELS.items() if m.ae is not None}
print(f"{'f':>3s}{'latent':>12s}{'steps':>7s}{'train TFLOP':>13s}{'FD ratio':>22s}{'AE floor':>22s}")
for (f, steps), r in f_rows.items():
    shape = "×".join(str(s) for s in F_MODELS[f].shape[::-1])
    print(f"{f:>3d}{shape:>12s}{steps:>7d}{r['tflops']:>13.2f}{mean_sd(r['ratios']):>22s}"
          f"{mean_sd(recon[f]) if f in recon else '—':>22s}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for f in F_MODELS:
    pts = sorted((s, r) for (ff, s), r in f_rows.items() if ff == f)
    for ax, xkey in zip(axes, ("steps", "tflops")):
        xs = [s if xkey == "steps" else r["tflops"] for s, r in pts]
        ax.errorbar(xs, [np.mean(r["ratios"]) for _, r in pts], yerr=[np.std(r["ratios"], ddof=1) for _, r in pts],
                    marker="o", capsize=3, label=f"f = {f}" + (" (pixels)" if f == 1 else ""))
for ax, label in zip(axes, ("training steps (batch 64)", "training compute, TFLOP (UNet only)")):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # unlabelled minor ticks: the labels would overlap
    ax.set_xlabel(label)
    ax.set_ylabel("FD ratio (1 = real data)")
    ax.legend(fontsize=8)
axes[0].set_title("quality against training steps (cf. LDM Fig. 6)")
axes[1].set_title("quality against training compute")
fig.tight_layout()
viz.save_figure(fig, "ch09_factors.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
last = {f: max(s for (ff, s) in f_rows if ff == f) for f in F_MODELS}
best = {f: f_rows[(f, last[f])]["ratios"] for f in F_MODELS}
print("f = 4 vs pixels (f = 1), each at its last milestone:", compare(best[4], best[1], names=("f = 4", "f = 1"))["text"])
first = L.milestones("f2")[0]
print(f"f = 2 vs f = 4 at {first} steps:", compare(f_rows[(2, first)]["ratios"], f_rows[(4, first)]["ratios"],
                                                  names=("f = 2", "f = 4"))["text"])
print("reproduces (pixel-based LDM-1 lags the latent models at comparable compute):",
      "yes" if compare(best[4], best[1])["verdict"] == "A better" else "no")
if 8 in best:
    print("f = 8 vs f = 4 at equal steps:", compare(best[8], best[4], names=("f = 8", "f = 4"))["text"])
    print("reproduces (too much compression limits quality: f = 8 worse than f = 4):",
          "yes" if compare(best[8], best[4])["verdict"] == "B better" else "no")

# %% [markdown] slideshow={"slide_type": "-"}
# **What reproduces.** Pixel-based diffusion lags the latent models at comparable compute — **yes**: f = 1 after 150
# steps (3.0 TFLOP) is at 30.6 ± 2.1, f = 4 after 1,500 steps (1.9 TFLOP for its UNet, plus 1.3 for its autoencoder)
# at 2.34 ± 0.43. (The pixel model's FD ratio went *up* from 50 to 150 steps, 19.9 → 30.6: both are "not yet digits",
# and we did not investigate that early-training wobble.) At equal steps, 500, f = 2, 4 and 8 stand at 6.4, 6.0 and
# 8.6 (f = 2 and f = 4 within noise); at 1,500, f = 8 (2.73 ± 0.20) is within noise of f = 4 (2.34 ± 0.43) while costing
# a quarter of its FLOPs. **What does not reproduce**: "too much compression limits quality" — **no**: our f = 8
# autoencoder's floor is the same 0.78 as f = 4's, because its 4×4×4 = 64 latent numbers still hold the 64 numbers of
# an upsampled digit; the paper's limit appears at f = 32 on ImageNet, where the first stage must discard real detail.
# Inception FID on ImageNet and a
# classifier-feature FD ratio on digits are different scales: compare directions, not numbers.
#
# **Running time.** This chapter takes 4 to 5 minutes from a cold cache on two busy cores (the course's budget is 3):
# scoring the pixel-space model at two milestones — 1,800 images at 10 calls of a 103-MFLOP network — is most of it,
# which is the cost this section is about. Re-runs load the scores from the cache.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Explore: walk the latent space; the KL weight
#
# Pick two test digits, encode them, and walk the straight line between their latents, decoding every point
# (`L.latent_walk`); choose the autoencoder by its KL weight β. The widget decodes *any* point on the line (and past its
# ends, w < 0 or w > 1). On these data the four autoencoders walk almost alike (the static figure below, one row per
# β): every intermediate point decodes to a plausible blend of strokes, and β changes little — the rate–distortion
# table's story again (on richer data the weight matters more). Below it, the static version for every β, and an
# animation of the latent reverse process: the latent z_t (channel 0) and the decoded prediction D(ẑ_0/s) along 25 DDIM
# steps.

# %% slideshow={"slide_type": "-"}
latent_walk = L.latent_walk  # decode (1 − w) μ(x_a) + w μ(x_b): the widget's pure function, tested with the library
pair = (data.test_x[0], data.test_x[5])
ch09.check_latent_walk(latent_walk, ae, *pair)

# %% slideshow={"slide_type": "-"} tags=["nbval-ignore-output"]
def _walk(beta, w, index_a, index_b):
    model = sweep[beta][0]
    x_a, x_b = data.test_x[index_a], data.test_x[index_b]
    fig, axes = plt.subplots(1, 4, figsize=(9, 2.4))
    for ax, img, title in zip(axes, (x_a, latent_walk(model, x_a, x_b, [0.0])[0], latent_walk(model, x_a, x_b, [w])[0],
                                     latent_walk(model, x_a, x_b, [1.0])[0]),
                              ("x_a", "D(μ(x_a))", f"w = {w:.2f}", "D(μ(x_b))")):
        viz.show_images(img[None], nrow=1, ax=ax, title=title)
    fig.suptitle(f"β = {beta:g}", fontsize=10)
    plt.show()


_ = widgets.interact(_walk, beta=widgets.SelectionSlider(options=list(L.KL_WEIGHTS), value=L.KL_MAIN),
                     w=widgets.FloatSlider(min=-0.5, max=1.5, step=0.05, value=0.5),
                     index_a=widgets.IntSlider(min=0, max=data.test_x.shape[0] - 1, value=0),
                     index_b=widgets.IntSlider(min=0, max=data.test_x.shape[0] - 1, value=5))

# %% slideshow={"slide_type": "subslide"}
walk_w = torch.linspace(0, 1, 9)
fig, ax = plt.subplots(figsize=(7, 0.9 * len(L.KL_WEIGHTS) + 0.6))
viz.show_images(torch.cat([latent_walk(sweep[b][0], *pair, walk_w) for b in L.KL_WEIGHTS]), nrow=9, ax=ax,
                title="latent walks, one row per β = " + ", ".join(f"{b:g}" for b in L.KL_WEIGHTS))
viz.save_figure(fig, "ch09_latent_walk.png", dpi=90)
plt.show()

# %% slideshow={"slide_type": "subslide"}
ts_gif = samplers.time_grid(by_profile(smoke=5, cpu=25, gpu=25), T=1000).to(device)
zs, z0s = reverse_chain(den, sets["latent"][2][:8].to(device), ts_gif, eta=0.0)
decoded = [ldm.to_images(z0.to(device)) for z0 in z0s]


def _gif_frame(ax, i):
    i = min(i, len(decoded) - 1)
    latent = torch.nn.functional.interpolate(zs[i + 1][:, :1].clamp(-3, 3) / 3, size=data.image_size, mode="nearest")
    viz.show_images(torch.cat([latent, decoded[i]]), nrow=8, ax=ax,
                    title=f"t = {float(ts_gif[i + 1]):.2f}: z_t (channel 0), D(ẑ_0 / s)")


gif = viz.save_gif(_gif_frame, "ch09_latent_reverse.gif", n_frames=len(decoded) + 4, fps=6, figsize=(6, 1.9))
print(f"{len(decoded) + 4} frames written to {gif.parent.name}/{gif.name}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. Exercises
#
# **Exercise 1 — the rate.** Write `kl_to_standard_normal(mean, logvar)`: KL(N(μ, diag e^{logvar}) ‖ N(0, I)) in nats,
# one number per sample, for mean and logvar of shape (B, c, h, w).

# %% slideshow={"slide_type": "-"}
def my_kl_to_standard_normal(mean, logvar):
    ...  # your code


# ch09.check_kl(my_kl_to_standard_normal)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def kl_solution(mean, logvar):
    return 0.5 * (logvar.exp() + mean**2 - 1 - logvar).flatten(1).sum(1)


ch09.check_kl(kl_solution)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 2 — the scale factor.** Write `scale_factor(z)` for latents z (N, c, h, w): the number that Stable
# Diffusion's configuration calls `scale_factor`, for these latents. What is the standard deviation of latents whose
# factor is 0.18215?

# %% slideshow={"slide_type": "-"}
def my_scale_factor(z):
    ...  # your code


# ch09.check_scale_factor(my_scale_factor)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def scale_factor_solution(z):
    return 1.0 / z.double().std()
# 1 / 0.18215 = 5.49: Stable Diffusion v1's autoencoder produces latents with a standard deviation of about 5.5.


ch09.check_scale_factor(scale_factor_solution)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Exercise 3 — attention by hand.** Write `attend(q, k, v)` for q (B, N, d), k (B, L, d), v (B, L, e): Eq. 3 of the
# LDM paper, without projections.

# %% slideshow={"slide_type": "-"}
def my_attend(q, k, v):
    ...  # your code


# ch09.check_attend(my_attend)

# %% jupyter={"source_hidden": true} slideshow={"slide_type": "-"}
def attend_solution(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1) @ v


ch09.check_attend(attend_solution)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Latent diffusion is chapter 03's DDPM on the latent grid of an autoencoder: z_0 = s·μ(x), the same schedule, loss,
#   samplers and guidance, and one decoder call per sample. Checked: the inline loss and the inline latent DDIM + decode
#   equal the library's.
# - The KL autoencoder's loss follows from the evidence lower bound; its KL in closed form matches Monte Carlo (and the
#   standard deviation put for the variance is rejected). β trades rate (563 → 86 nats) against distortion (3.1 → 8.8
#   ·10⁻⁴ per pixel) on upsampled digits without touching the reconstructions' FD ratio (0.78).
# - The scale factor sets the signal-to-noise ratio the schedule sees: s = 1/std(z). Stable Diffusion's 0.18215 is
#   1/5.49; ours is 0.754 (std 1.33). Checked: s·z has unit variance; unscaled latents are rejected.
# - At about equal training compute a latent model makes digits (FD ratio 2.3) where a pixel model at 32×32 does not
#   (30.6); one latent network call costs 15.8 times fewer FLOPs. Guidance on latents works as in pixels (accuracy 0.89 →
#   0.98 at w = 1), and cross-attention on a spelled prompt reaches 0.99 accuracy.
# - "Stable" in Stable Diffusion is a name, not a property: the LDM paper says LDM-f; Stable Diffusion v1 is an LDM
#   released in August 2022 by the paper's authors (CompVis) with Stability AI, whose compute trained it, and Runway;
#   what makes it practical is perceptual compression, cross-attention, classifier-free guidance and fast solvers.
# - The LDM paper's f comparison, in miniature: pixel diffusion lags (reproduces); too much compression hurting does not
#   show at f = 8 on data with 64 degrees of freedom (does not reproduce, and we say why).
#
# **Further reading.** Esser et al., *Scaling Rectified Flow Transformers for High-Resolution Image Synthesis* (Stable
# Diffusion 3, 2024) — chapter 08's flows in an LDM's latent space; Podell et al., *SDXL* (2023) — a larger latent model
# and another scale factor; Peebles & Xie, *Scalable Diffusion Models with Transformers* (DiT, 2023) — a transformer on
# the latent grid; Kingma & Gao, *Understanding Diffusion Objectives as the ELBO with Simple Data Augmentation* (2023) —
# the weighting of noise levels that the latent scale shifts.
#
# **Next.** This is the last chapter of the course's core sequence; the map's later nodes (discrete diffusion,
# distillation and consistency models, inverse problems) build on chapters 03–09.
