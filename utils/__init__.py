"""Diffusion models, from first principles: the course package.

One idea per module — see README.md for the map. Import submodules explicitly, e.g.
``from utils import schedules, samplers``.
"""

__version__ = "0.1.0"
