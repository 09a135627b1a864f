r"""The networks. Every denoiser is called as ``net(x, t)`` or ``net(x, t, y)`` with ``t`` a float tensor of
shape (B,) in [0, 1] and returns a tensor shaped like ``x``; what the output *means* (ε, x̂_0 or v) is decided
by ``utils.denoiser.Denoiser``, not here.

- ``embedding``: sinusoidal time embedding, label embedding with a null label ∅, ``count_parameters``
- ``mlp``: the toy MLP;  ``unet``: the course UNet (and ``LearnedVarianceUNet``);  ``classifier``: the (noise-aware) classifier
- ``autoencoder``: the KL autoencoder of latent diffusion;  ``cross_attention``: token encoder, cross-attention, a
  prompt-conditioned UNet
"""

from utils.nets.autoencoder import Autoencoder
from utils.nets.classifier import Classifier
from utils.nets.cross_attention import CrossAttention, CrossAttentionUNet, TokenEncoder
from utils.nets.embedding import LabelEmbedding, TimeEmbedding, count_parameters, sinusoidal
from utils.nets.mlp import MLP
from utils.nets.unet import LearnedVarianceUNet, UNet

__all__ = ["Classifier", "LabelEmbedding", "TimeEmbedding", "count_parameters", "sinusoidal", "MLP", "UNet",
           "LearnedVarianceUNet",
           "Autoencoder", "CrossAttention", "CrossAttentionUNet", "TokenEncoder"]
