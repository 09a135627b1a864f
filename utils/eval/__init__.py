"""How good is a model? ``metrics`` (sliced Wasserstein for 2-D points; the FD ratio for images, with its
definition) and likelihoods: ``likelihood`` (DDPM's variational bound in bits/dim, the discretised decoder) and
``ode_likelihood`` (exact log-likelihood through the probability-flow ODE)."""
