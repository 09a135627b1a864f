# Sphinx configuration of the course website (copied into build/site-src by docs/build_site.py).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for the utils reference

project = "Diffusion models, from first principles"
author = "the course's authors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"  # pages show the outputs stored in the notebooks
nb_merge_streams = True
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "docutils"]
autodoc_mock_imports = []

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_theme_options = {"use_download_button": False, "use_fullscreen_button": False, "show_toc_level": 1}
html_last_updated_fmt = None
# MathJax 3 with SVG output (one self-contained file, no web fonts), copied into _static by build_site.py: no CDN.
mathjax_path = "mathjax/tex-svg.js"
html_context = {"default_mode": "light"}  # a stored mode is needed, or the theme logs an error on first visit
html_favicon = "_static/favicon.png"
