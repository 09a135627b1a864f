import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils import config, viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def tmp_repo(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    return tmp_path


def test_image_grid_shape_range_and_placement():
    x = torch.full((5, 1, 8, 8), -1.0)
    x[3] = 1.0  # the 4th image is white
    grid = viz.image_grid(x, nrow=3, padding=1)
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    # image 3 sits in row 1, column 0; image 0 in row 0, column 0
    assert np.all(grid[10:18, 1:9] == 1.0)
    assert np.all(grid[1:9, 1:9] == 0.0)
    # the unused last slot stays padding
    assert np.all(grid[10:18, 19:27] == 1.0)


def test_image_grid_rgb_and_clipping():
    x = torch.linspace(-3, 3, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    grid = viz.image_grid(x, nrow=8, padding=0)
    assert grid.shape == (4, 8, 3)
    assert grid.min() == 0.0 and grid.max() == 1.0
    np.testing.assert_allclose(grid[:, :4, :], ((x[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), atol=1e-6)


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="x"):
        viz.image_grid(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        viz.image_grid(torch.zeros(4, 2, 8, 8))
    with pytest.raises(ValueError, match="nrow"):
        viz.image_grid(torch.zeros(4, 1, 8, 8), nrow=0)


def test_show_images_and_points_return_their_axes():
    ax = viz.show_images(torch.rand(6, 1, 8, 8) * 2 - 1, nrow=3, title="digits")
    assert ax.get_title() == "digits"
    assert ax.images[0].get_array().shape == (19, 28)
    fig, ax2 = plt.subplots()
    assert viz.plot_points(torch.randn(50, 2), ax=ax2, lim=3, title="pts") is ax2
    assert ax2.get_xlim() == (-3.0, 3.0)
    assert len(ax2.collections[0].get_offsets()) == 50
    with pytest.raises(ValueError, match="N, 2"):
        viz.plot_points(torch.randn(50, 3))


def test_plot_chain_points_and_images():
    xs = [torch.randn(30, 2) for _ in range(4)]
    axes = viz.plot_chain(xs, times=[1.0, 0.5, 0.25, 0.0])
    assert len(axes) == 4
    assert axes[1].get_title() == "t = 0.50"
    imgs = [torch.rand(4, 1, 8, 8) for _ in range(3)]
    fig, given = plt.subplots(1, 3)
    out = viz.plot_chain(imgs, times=[1, 0.5, 0], axes=given, nrow=2)
    assert list(out) == list(given)
    with pytest.raises(ValueError, match="all"):
        viz.plot_chain([torch.randn(3, 2), torch.rand(2, 1, 8, 8)])
    with pytest.raises(ValueError, match="times"):
        viz.plot_chain(xs, times=[1.0])


def test_trajectories_vector_field_and_loss():
    traj = torch.cumsum(torch.randn(10, 7, 2), dim=0)
    ax = viz.plot_trajectories(traj)
    assert len(ax.lines) == 7
    ax = viz.plot_vector_field(lambda p: -p, lim=2.0, n=5)
    quiver = ax.collections[0]
    assert quiver.N == 25
    np.testing.assert_allclose(quiver.U, -quiver.X)
    np.testing.assert_allclose(quiver.V, -quiver.Y)
    with pytest.raises(ValueError, match="fn"):
        viz.plot_vector_field(lambda p: p[:, :1], n=4)
    ax = viz.plot_loss(np.exp(-np.linspace(0, 3, 200)), smooth=10)
    assert ax.get_yscale() == "log"
    assert viz.plot_loss([1.0, -0.5, 0.2]).get_yscale() == "linear"


def test_moving_average_matches_direct_mean():
    v = np.arange(10.0)
    out = viz.moving_average(v, 3)
    expected = [np.mean(v[max(0, i - 2):i + 1]) for i in range(10)]
    np.testing.assert_allclose(out, expected)


def test_save_figure_writes_png_into_figures(tmp_repo):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = viz.save_figure(fig, "line")
    assert path == tmp_repo / "figures" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="name"):
        viz.save_figure(fig, "../outside.png")


def test_smoke_profile_never_writes_into_figures(tmp_repo, tmp_cache, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    fig, ax = plt.subplots()
    path = viz.save_figure(fig, "line")
    assert path == tmp_cache / "figures-smoke" / "line.png" and path.exists()
    assert not (tmp_repo / "figures").exists()


def test_save_gif_from_images_and_from_a_draw_function(tmp_repo):
    frames = [viz.image_grid(torch.rand(4, 1, 8, 8) * 2 - 1, nrow=2) for _ in range(3)]
    path = viz.save_gif(frames, "chain.gif", fps=4)
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")

    def draw(ax, i):
        ax.plot([0, i], [0, i])

    path = viz.save_gif(draw, tmp_repo / "drawn.gif", fps=4, n_frames=3)
    from PIL import Image

    with Image.open(path) as im:
        assert im.n_frames == 3
    with pytest.raises(ValueError, match="n_frames"):
        viz.save_gif(draw, "x.gif")
