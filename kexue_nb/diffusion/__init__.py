"""kexue_nb.diffusion: the diffusion chapters' toolkit (kexue.fm/archives/9119, 9164, 9257).

Su's notation throughout: x_t = α_t x_{t−1} + β_t ε_t with α_t² + β_t² = 1, ᾱ_t = α_1⋯α_t,
β̄_t = √(1 − ᾱ_t²); networks predict the DDPM paper's ε, so x_t = ᾱ_t x_0 + β̄_t ε.

* :mod:`.schedule`: :class:`Schedule` (float64 tables indexed by t = 0..T).
* :mod:`.samplers`: :func:`ddpm_sample`, :func:`ddim_sample` and their single steps.
* :mod:`.guidance`: :class:`ClassifierGuidance`, :class:`ClassifierFreeGuidance`.
* :mod:`.data`: seeded 2-D toy sets, the exact :class:`LabelledMixture`, the 8×8 digits.
* :mod:`.metrics`: energy distance, sliced Wasserstein, a Fréchet distance for digits, noise
  floors, and the Gaussian-fit baseline.
* :mod:`.models`: :class:`MLPDenoiser`, :class:`UNet8`, :class:`NoisyClassifier`.
* :mod:`.trainer`: :class:`Trainer` and :class:`TrainConfig`; :mod:`.checkpoint`: atomic,
  pickle-free safetensors checkpoints.
* :mod:`.recipes`: :func:`train_digit_unet`, the digits UNet two chapters train.
* :mod:`.classifier`: :class:`ClassifierTrainer`, the same trainer with the noisy-input
  cross-entropy, for the classifier of classifier guidance.
* :mod:`.distributed`: process group from torchrun's environment (NCCL/gloo), rank helpers;
  the Trainer runs data parallel inside one.
* ``python -m kexue_nb.diffusion train|sample``: the command line.
"""

from .checkpoint import (
    CheckpointError,
    checkpoint_from_bytes,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .classifier import ClassifierTrainer, noisy_log_likelihood
from .data import (
    ExactDenoiser,
    LabelledMixture,
    eight_gaussians,
    load_digits,
    moons,
    swiss_roll,
)
from .distributed import DistEnv, RendezvousTimeout, distributed_session, init_distributed
from .guidance import ClassifierFreeGuidance, ClassifierGuidance, Guidance, cfg_combine
from .metrics import (
    DigitsFeatureNet,
    NoiseFloor,
    digits_features,
    energy_distance,
    frechet_digits_distance,
    frechet_distance,
    gaussian_fit_sample,
    load_feature_net,
    noise_floor,
    sliced_wasserstein,
)
from .models import MLPDenoiser, NoisyClassifier, UNet8, build_model
from .recipes import train_digit_unet
from .samplers import (
    Samples,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    gaussian_chain_variance,
)
from .schedule import DDPMPaperSchedule, Schedule
from .trainer import TrainConfig, Trainer, TrainResult

__all__ = [
    "CheckpointError",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "ClassifierTrainer",
    "DDPMPaperSchedule",
    "DigitsFeatureNet",
    "DistEnv",
    "ExactDenoiser",
    "Guidance",
    "LabelledMixture",
    "MLPDenoiser",
    "NoiseFloor",
    "NoisyClassifier",
    "RendezvousTimeout",
    "Samples",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "UNet8",
    "build_model",
    "cfg_combine",
    "checkpoint_from_bytes",
    "ddim_sample",
    "ddim_sigma",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_sample",
    "ddpm_step",
    "digits_features",
    "distributed_session",
    "eight_gaussians",
    "energy_distance",
    "frechet_digits_distance",
    "frechet_distance",
    "gaussian_chain_variance",
    "gaussian_fit_sample",
    "init_distributed",
    "load_checkpoint",
    "load_digits",
    "load_feature_net",
    "load_model",
    "moons",
    "noise_floor",
    "noisy_log_likelihood",
    "save_checkpoint",
    "sliced_wasserstein",
    "swiss_roll",
    "train_digit_unet",
]
