r"""Chapter 09's diagram: where the text encoder, the diffusion model(s) and the upsamplers sit in five text-to-image
(or class-to-image) systems. Each system is a row of stages drawn left to right; the facts are in ``SYSTEMS``, with
the paper each row is taken from."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# kind of each stage -> colour
COLOURS = {"condition": "#fff2cc", "encoder": "#fde0c5", "prior": "#d9d2e9", "diffusion": "#cfe2f3",
           "upsampler": "#d9ead3", "decoder": "#f4cccc", "image": "#eeeeee"}

# (system, source, stages); a stage is (kind, text)
SYSTEMS = (
    ("Cascaded Diffusion Models", "Ho et al., JMLR 2022",
     (("condition", "class label"), ("diffusion", "base DM\n32×32"),
      ("upsampler", "super-res DM\n→ 64×64"), ("upsampler", "super-res DM\n→ 256×256"), ("image", "256×256"))),
    ("GLIDE", "Nichol et al., ICML 2022",
     (("condition", "text"), ("encoder", "transformer\n(trained jointly)"), ("diffusion", "text-cond. DM\n64×64"),
      ("upsampler", "text-cond. upsampler\n→ 256"), ("image", "256×256"))),
    ("DALL·E 2 (unCLIP)", "Ramesh et al., 2022",
     (("condition", "text"), ("encoder", "CLIP text\nencoder (frozen)"), ("prior", "prior → CLIP\nimage embedding"),
      ("diffusion", "decoder DM\n64×64"), ("upsampler", "2 upsamplers\n→ 256 → 1024"), ("image", "1024×1024"))),
    ("Imagen", "Saharia et al., NeurIPS 2022",
     (("condition", "text"), ("encoder", "T5-XXL\n(frozen)"), ("diffusion", "text-cond. DM\n64×64"),
      ("upsampler", "2 super-res DMs\n→ 256 → 1024"), ("image", "1024×1024"))),
    ("Stable Diffusion v1 (LDM)", "Rombach et al., CVPR 2022; CompVis release",
     (("condition", "text"), ("encoder", "CLIP ViT-L/14\ntext (frozen)"), ("diffusion", "UNet + cross-attn\n64×64×4 latent"),
      ("decoder", "VAE decoder\nf = 8"), ("image", "512×512"))),
)


def draw_lineage(ax=None):
    """Draw ``SYSTEMS`` as rows of boxes and arrows; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(14, 7))
    w, h, gap = 1.9, 0.8, 0.45
    for row, (name, source, stages) in enumerate(SYSTEMS):
        y = (len(SYSTEMS) - 1 - row) * 1.35
        ax.text(-0.2, y + 0.12, name, ha="right", va="center", fontsize=10, weight="bold")
        ax.text(-0.2, y - 0.2, source, ha="right", va="center", fontsize=7.5, color="#444444")
        for i, (kind, text) in enumerate(stages):
            x = i * (w + gap)
            ax.add_patch(FancyBboxPatch((x, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        fc=COLOURS[kind], ec="#333333", lw=1.0))
            ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=8)
            if i:
                ax.add_patch(FancyArrowPatch((x - gap + 0.03, y), (x - 0.03, y), arrowstyle="-|>", mutation_scale=12,
                                             color="#555555"))
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c, ec="#333333") for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), loc="upper center", bbox_to_anchor=(0.45, -0.02), ncol=len(COLOURS), fontsize=8,
              frameon=False)
    ax.set_xlim(-4.2, 6 * (w + gap))
    ax.set_ylim(-0.8, (len(SYSTEMS) - 1) * 1.35 + 0.7)
    ax.axis("off")
    ax.set_title("text-to-image lineage: where the text encoder, the diffusion model(s) and the upsamplers sit",
                 fontsize=11)
    return ax
