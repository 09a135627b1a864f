"""Pictures of the process: image grids, point clouds, chains, trajectories, vector fields, loss curves.

Every plotting function takes an optional matplotlib ``ax`` (a new figure is made without one) and
returns it; nothing here calls ``plt.show()`` or changes matplotlib's global style. Images are
tensors (B, C, H, W) in [-1, 1] (the course's data range); points are tensors (N, 2).
``save_figure`` and ``save_gif`` write into ``<repo>/figures/`` so README.md can show the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from utils import config


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _new_ax(ax, figsize=(4, 4)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _is_image_batch(x) -> bool:
    return len(tuple(x.shape)) == 4


# --- images ---------------------------------------------------------------------------------------


def image_grid(x, nrow: int = 8, padding: int = 1, value_range: tuple[float, float] = (-1.0, 1.0),
               pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch of images (B, C, H, W) into one array in [0, 1], ``nrow`` images per row.

    Returns (rows·(H+p)+p, nrow·(W+p)+p) for C = 1 or the same with a last axis of 3 for C = 3,
    where p = ``padding``. Values are mapped from ``value_range`` to [0, 1] and clipped.
    """
    x = _to_numpy(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {x.shape}")
    b, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels, got {c}")
    if b == 0:
        raise ValueError("x is an empty batch")
    if not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be increasing, got {value_range}")
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    ncol = min(nrow, b)
    nrows = -(-b // ncol)
    p = padding
    grid = np.full((c, nrows * (h + p) + p, ncol * (w + p) + p), pad_value, dtype=np.float32)
    for i in range(b):
        r, k = divmod(i, ncol)
        top, left = p + r * (h + p), p + k * (w + p)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def show_images(x, nrow: int = 8, ax=None, title: str | None = None, **grid_kwargs):
    """Show a batch of images (B, C, H, W) in [-1, 1] as one grid on ``ax``; returns ``ax``."""
    grid = image_grid(x, nrow=nrow, **grid_kwargs)
    height, width = grid.shape[:2]
    ax = _new_ax(ax, figsize=(5.0, min(10.0, 5.0 * height / width)))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


# --- points ---------------------------------------------------------------------------------------


def _set_lim(ax, lim):
    if lim is None:
        return
    if isinstance(lim, (int, float)):
        lim = (-float(lim), float(lim))
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)


def plot_points(x, ax=None, s: float = 2.0, alpha: float = 0.5, title: str | None = None, lim=None,
                color=None, **scatter_kwargs):
    """Scatter a cloud of 2-D points (N, 2). ``lim`` is a number L (axes [-L, L]) or a (lo, hi) pair."""
    x = _to_numpy(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {x.shape}")
    ax = _new_ax(ax)
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0, **scatter_kwargs)
    ax.set_aspect("equal")
    _set_lim(ax, lim)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_chain(xs: Sequence, times: Sequence | None = None, axes=None, nrow: int = 8, lim=None,
               label: str = "t"):
    """A row of panels, one per state of a chain: all 2-D point clouds (N, 2) or all image batches.

    ``times`` (same length as ``xs``) titles the panels ``t = ...``. Returns the array of axes.
    """
    if len(xs) == 0:
        raise ValueError("xs is empty")
    kinds = {_is_image_batch(x) for x in xs}
    if len(kinds) != 1:
        raise ValueError("xs must be all point clouds (N, 2) or all image batches (B, C, H, W)")
    if times is not None and len(times) != len(xs):
        raise ValueError(f"times has {len(times)} entries but xs has {len(xs)}")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(xs), figsize=(2.2 * len(xs), 2.4), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(np.asarray(axes, dtype=object)).ravel()
    if len(axes) != len(xs):
        raise ValueError(f"axes has {len(axes)} panels but xs has {len(xs)}")
    images = kinds.pop()
    for i, (x, ax) in enumerate(zip(xs, axes)):
        title = None if times is None else f"{label} = {float(times[i]):.2f}"
        if images:
            show_images(x, nrow=nrow, ax=ax, title=title)
        else:
            plot_points(x, ax=ax, title=title, lim=lim)
            ax.set_xticks([])
            ax.set_yticks([])
    return axes


def plot_trajectories(traj, ax=None, max_paths: int = 200, alpha: float = 0.4, lim=None,
                      title: str | None = None, color="tab:blue"):
    """Draw paths of 2-D points, ``traj`` (S, N, 2) = S time steps of N points; start ○, end ●."""
    traj = _to_numpy(traj)
    if traj.ndim != 3 or traj.shape[2] != 2:
        raise ValueError(f"traj must have shape (S, N, 2), got {traj.shape}")
    ax = _new_ax(ax)
    paths = traj[:, :max_paths]
    ax.plot(paths[..., 0], paths[..., 1], color=color, lw=0.6, alpha=alpha)
    ax.scatter(paths[0, :, 0], paths[0, :, 1], s=6, facecolors="none", edgecolors="gray", linewidths=0.5)
    ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=6, color="black", linewidths=0)
    ax.set_aspect("equal")
    _set_lim(ax, lim)
    if title is not None:
        ax.set_title(title)
    return ax


@torch.no_grad()
def plot_vector_field(fn: Callable, ax=None, lim=3.0, n: int = 20, title: str | None = None,
                      normalize: bool = False, color="tab:red", **quiver_kwargs):
    """Arrows of ``fn`` (a map (M, 2) -> (M, 2) on float32 tensors) on an n x n grid over ``lim``.

    ``normalize=True`` draws unit arrows (direction only); useful where magnitudes span decades.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    lo, hi = (-float(lim), float(lim)) if isinstance(lim, (int, float)) else map(float, lim)
    g = torch.linspace(lo, hi, n)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    v = _to_numpy(fn(pts))
    if v.shape != (n * n, 2):
        raise ValueError(f"fn must map (M, 2) to (M, 2), got output shape {v.shape}")
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    ax = _new_ax(ax)
    ax.quiver(pts[:, 0].numpy(), pts[:, 1].numpy(), v[:, 0], v[:, 1], color=color, **quiver_kwargs)
    ax.set_aspect("equal")
    _set_lim(ax, (lo, hi))
    if title is not None:
        ax.set_title(title)
    return ax


# --- training -------------------------------------------------------------------------------------


def moving_average(values, window: int) -> np.ndarray:
    """Trailing moving average of a 1-D sequence; the first entries average what is there so far."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    start = np.maximum(idx - window, 0)
    return (c[idx] - c[start]) / (idx - start)


def plot_loss(losses, ax=None, smooth: int | None = None, title: str | None = "training loss",
              label: str | None = None):
    """Loss curve: the raw values faintly and a moving average (window ``smooth``, default ~len/50).

    The y axis is logarithmic when every value is positive, linear otherwise.
    """
    v = np.asarray([float(l) for l in losses], dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError("losses must be a non-empty 1-D sequence")
    smooth = max(1, len(v) // 50) if smooth is None else smooth
    ax = _new_ax(ax, figsize=(5, 3))
    steps = np.arange(1, len(v) + 1)
    ax.plot(steps, v, color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(steps, moving_average(v, smooth), color="tab:blue", lw=1.5, label=label)
    if np.all(v > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title is not None:
        ax.set_title(title)
    if label is not None:
        ax.legend()
    return ax


# --- files ----------------------------------------------------------------------------------------


def figures_dir() -> Path:
    """``<repo>/figures`` (created if missing) — or, in the ``smoke`` profile, ``<cache>/figures-smoke``, so a
    test run never overwrites the committed figures with smoke-sized results."""
    if config.get_profile() == "smoke":
        path = config.cache_dir() / "figures-smoke"
    else:
        path = Path(config.REPO_ROOT) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _figure_path(name) -> Path:
    path = Path(name)
    if not path.is_absolute():
        if ".." in path.parts or str(name).strip() == "":
            raise ValueError(f"name must be a file name inside figures/, got {name!r}")
        path = figures_dir() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``<repo>/figures/<name>`` (PNG unless the name ends in .svg/.pdf); return the path."""
    path = _figure_path(name)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        path = path.with_name(path.name + ".png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def save_gif(frames, path, fps: int = 8, n_frames: int | None = None, figsize=(3, 3), dpi: int = 80,
             title: str | None = None) -> Path:
    """Write an animated GIF; return its path (a relative path is taken inside ``<repo>/figures``).

    ``frames`` is either a list of images (H, W) or (H, W, 3) with values in [0, 1] (e.g. from
    ``image_grid``), or a function ``draw(ax, i)`` that draws frame i on a cleared ``ax``
    (then ``n_frames`` is required).
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import PillowWriter

    path = _figure_path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"path must end in .gif, got {str(path)!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if callable(frames):
        if n_frames is None or n_frames < 1:
            raise ValueError("n_frames (>= 1) is required when frames is a draw function")
        draw, count = frames, n_frames
    else:
        images = [np.asarray(_to_numpy(f)) for f in frames]
        if not images:
            raise ValueError("frames is empty")
        if any(im.ndim not in (2, 3) for im in images):
            raise ValueError("each frame must be an image (H, W) or (H, W, 3)")

        def draw(ax, i):
            im = images[i]
            ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0.0, vmax=1.0,
                      interpolation="nearest")
            ax.set_axis_off()

        count = len(images)
    fig, ax = plt.subplots(figsize=figsize)
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, str(path), dpi=dpi):
            for i in range(count):
                ax.clear()
                draw(ax, i)
                if title is not None:
                    ax.set_title(title)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return path
