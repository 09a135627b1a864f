"""The course map: which paper builds on which, and which chapter teaches it (drawn by code)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


@dataclass(frozen=True)
class Node:
    key: str
    title: str
    paper: str
    chapter: str  # "00".."09" or "later"
    x: float
    y: float


NODES = (
    Node("toolkit", "Toolkit", "Gaussians, KL, data", "00", 0.0, 2.0),
    Node("sgld", "Langevin sampling", "SGLD: Welling & Teh 2011", "02", 0.0, 0.0),
    Node("neq", "Non-equilibrium\nthermodynamics", "Sohl-Dickstein et al. 2015", "01", 1.7, 3.3),
    Node("ncsn", "Score networks +\nannealed Langevin", "Song & Ermon 2019, 2020", "02", 1.7, 0.0),
    Node("ddpm", "DDPM", "Ho et al. 2020", "03", 3.4, 2.0),
    Node("iddpm", "Improved DDPM\n(cosine, learned Σ)", "Nichol & Dhariwal 2021", "03", 5.1, 3.3),
    Node("ddim", "DDIM", "Song, Meng & Ermon 2021", "04", 5.1, 2.0),
    Node("sde", "Score SDEs,\nprobability-flow ODE", "Song et al. 2021", "05", 5.1, 0.3),
    Node("cg", "Classifier guidance", "Dhariwal & Nichol 2021", "06", 6.8, 3.3),
    Node("cfg", "Classifier-free\nguidance", "Ho & Salimans 2022", "06", 8.5, 3.3),
    Node("solvers", "Fast ODE solvers", "PNDM, DEIS, DPM-Solver", "07", 7.2, 1.15),
    Node("flow", "Flow matching,\nrectified flow", "Lipman; Liu et al. 2023", "08", 8.5, 0.0),
    Node("ldm", "Latent diffusion", "Rombach et al. 2022", "09", 10.2, 2.0),
)

EDGES = (
    ("toolkit", "neq"), ("toolkit", "ncsn"), ("sgld", "ncsn"), ("neq", "ddpm"), ("ncsn", "ddpm"), ("ddpm", "iddpm"),
    ("ddpm", "ddim"), ("ddpm", "sde"), ("ncsn", "sde"), ("iddpm", "cg"), ("cg", "cfg"), ("ddim", "solvers"),
    ("sde", "solvers"), ("sde", "flow"), ("solvers", "flow"), ("cfg", "ldm"), ("solvers", "ldm"),
)

CHAPTER_FILES = {
    "00": "00_toolkit.ipynb", "01": "01_nonequilibrium_thermodynamics.ipynb", "02": "02_score_matching_langevin.ipynb",
    "03": "03_ddpm.ipynb", "04": "04_ddim.ipynb", "05": "05_score_sde.ipynb", "06": "06_guidance.ipynb",
    "07": "07_fast_samplers.ipynb", "08": "08_flow_matching.ipynb",
    "09": "09_latent_diffusion.ipynb",
}

_COLOURS = {"00": "#e8e8e8", "01": "#fde0c5", "02": "#d9ead3", "03": "#cfe2f3", "04": "#d9d2e9",
            "05": "#fff2cc", "06": "#f4cccc", "07": "#d0e0e3", "08": "#ead1dc", "09": "#d9ead3",
            "later": "#ffffff"}


# The package's layers, bottom first: (layer, what lives there, the layers it may import). tests/test_layers.py
# checks every import of utils against this table; ``draw_package_layers`` draws it.
PACKAGE_LAYERS = (
    ("core", "tensors  gaussians  schedules  forward  denoiser  sde\n"
             "time_grids  samplers  solvers  analytic_dpm  guidance  oracles  ode  paths", ()),
    ("config", "config: profile, device, seeds, cache", ()),
    ("nets", "nets/: embeddings, MLP, UNet, classifier", ("core", "config")),
    ("data", "data/: toys, mixture, digits, MNIST, levels", ("core", "config")),
    ("training", "training/: losses, loop, checkpoints, cache, zoo", ("core", "config", "nets", "data")),
    ("eval", "eval/: metrics, likelihood, ode_likelihood", ("core", "config", "nets", "data", "training")),
    ("shared", "viz  course_map", ("core", "config", "nets", "data", "training", "eval")),
    ("lessons", "lessons/: ch01_neq ... ch06_guidance", ("core", "config", "nets", "data", "training", "eval", "shared",
                                                     "exercises")),
    ("exercises", "exercises/: ch00 ... ch06 checkers", ("core", "config", "nets", "data", "training", "eval", "shared",
                                                        "lessons")),
)


def draw_package_layers(ax=None):
    """Draw ``PACKAGE_LAYERS`` as stacked boxes, the core at the bottom; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 5.2))
    rows = (("core",), ("config",), ("nets", "data"), ("training",), ("eval", "shared"), ("lessons", "exercises"))
    text = {name: what for name, what, _ in PACKAGE_LAYERS}
    colours = {"core": "#cfe2f3", "config": "#eeeeee", "nets": "#d9ead3", "data": "#d9ead3", "training": "#fff2cc",
               "eval": "#fde0c5", "shared": "#eeeeee", "lessons": "#f4cccc", "exercises": "#f4cccc"}
    for i, row in enumerate(rows):
        width = 10.0 / len(row)
        for j, name in enumerate(row):
            x, y = j * width, i * 1.1
            ax.add_patch(FancyBboxPatch((x + 0.08, y), width - 0.16, 0.9, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        fc=colours[name], ec="#333333", lw=1.0))
            two_lines = "\n" in text[name]
            ax.text(x + width / 2, y + (0.74 if two_lines else 0.62), name, ha="center", va="center", fontsize=10,
                    weight="bold")
            ax.text(x + width / 2, y + (0.34 if two_lines else 0.3), text[name], ha="center", va="center", fontsize=8,
                    family="monospace")
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.1, len(rows) * 1.1)
    ax.axis("off")
    ax.set_title("utils, by layers: each imports only the layers below it (chapters import anything)", fontsize=11)
    return ax


def check_map() -> None:
    """Every edge joins known nodes, and every edge points forward or sideways in time (left to right)."""
    nodes = {n.key: n for n in NODES}
    for a, b in EDGES:
        if a not in nodes or b not in nodes:
            raise ValueError(f"edge {a!r} -> {b!r} names an unknown node")
        if nodes[b].x < nodes[a].x:
            raise ValueError(f"edge {a!r} -> {b!r} points backwards")


def _box_exit(a: Node, b: Node, width: float, height: float) -> tuple[float, float]:
    """Where the segment from a's centre towards b's centre leaves a's box (plus a small gap)."""
    dx, dy = b.x - a.x, b.y - a.y
    scale = min((width / 2 + 0.04) / abs(dx) if dx else float("inf"), (height / 2 + 0.04) / abs(dy) if dy else float("inf"))
    return a.x + scale * dx, a.y + scale * dy


def draw_course_map(ax=None, width: float = 1.5, height: float = 0.8):
    """Draw the map on ``ax`` (a new 14x6 figure if None) and return the axes."""
    check_map()
    if ax is None:
        _, ax = plt.subplots(figsize=(15, 5.6))
    nodes = {n.key: n for n in NODES}
    for a, b in EDGES:
        start, end = _box_exit(nodes[a], nodes[b], width, height), _box_exit(nodes[b], nodes[a], width, height)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#555555", lw=1.2,
                                     shrinkA=1, shrinkB=1, zorder=1))
    for n in NODES:
        dashed = n.chapter == "later"
        ax.add_patch(FancyBboxPatch((n.x - width / 2, n.y - height / 2), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", fc=_COLOURS[n.chapter],
                                    ec="#333333", lw=1.0, ls="--" if dashed else "-", zorder=2))
        label = "later chapter" if dashed else f"chapter {n.chapter}"
        ax.text(n.x, n.y + 0.13, n.title, ha="center", va="center", fontsize=9, weight="bold", zorder=3)
        ax.text(n.x, n.y - 0.24, f"{n.paper}\n{label}", ha="center", va="center", fontsize=7.5, zorder=3,
                color="#333333")
    xs, ys = [n.x for n in NODES], [n.y for n in NODES]
    ax.set_xlim(min(xs) - 0.85, max(xs) + 0.85)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Diffusion models, from first principles — how the papers (and chapters) connect", fontsize=11)
    return ax


def show_course_map(chapter: str, figsize=(15, 5.6)) -> None:
    """Show the course map with a title naming ``chapter``'s nodes (e.g. "03"), through ``plt.show()``."""
    titles = [n.title.replace("\n", " ") for n in NODES if n.chapter == chapter]
    if not titles:
        raise ValueError(f"chapter={chapter!r} has no node on the course map")
    fig, ax = plt.subplots(figsize=figsize)
    draw_course_map(ax)
    ax.set_title(f"course map — this chapter ({chapter}): " + ", ".join(f"'{t}'" for t in titles))
    plt.show()
