r"""Training: losses, the loop, the cache, checkpoints and the course's standard trained models.

- ``losses``: ``diffusion_loss``, ``diffusion_loss_fn`` / ``DiffusionLoss``, ``drop_labels`` (classifier-free
  guidance training), ``elbo_weights`` / ``elbo_weighting``
- ``loop``: ``TrainConfig``, ``TrainResult``, ``learning_rate``, the EMA, ``train_step`` and ``train``
- ``cache``: ``cache_key`` and ``cached_train`` (train once, then load from ``cache_dir()/models``)
- ``checkpoints``: atomic, verified ``save_checkpoint`` / ``load_checkpoint``
- ``zoo``: the standard models as frozen spec dataclasses: ``toy_ddpm``, ``digits_ddpm``, ``dequantised_digits_ddpm``
- ``flow_matching``: the flow-matching loss (any Gaussian path, minibatch OT coupling, reflow pairs, distillation)
- ``flows``: the course's flows: ``toy_flow``, ``digits_flow`` (flow matching, reflow rounds, distillation)
- ``shipped``: the trained cpu-profile models in ``checkpoints/`` (EMA weights, checksummed), loaded before training
- ``distributed``: the same training on several processes (torchrun, DistributedDataParallel), resumable
"""

from utils.training.cache import cache_key, cached_train
from utils.training.losses import diffusion_loss, diffusion_loss_fn
from utils.training.loop import TrainConfig, TrainingError, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train", "cached_train", "cache_key", "diffusion_loss",
           "diffusion_loss_fn"]
