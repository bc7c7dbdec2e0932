"""Tests of kexue_nb.diffusion.recipes: the digits UNet the chapters train."""

import pytest
import torch

from kexue_nb.diffusion.data import load_digits
from kexue_nb.diffusion.models import UNet8
from kexue_nb.diffusion.recipes import train_digit_unet
from kexue_nb.diffusion.schedule import Schedule
from kexue_nb.diffusion.trainer import TrainConfig, Trainer


def test_train_digit_unet_is_the_trainer_run_it_names():
    schedule = Schedule.su(50)
    images, labels = load_digits()
    images, labels = images[:64], labels[:64]
    kwargs = dict(init_seed=3, train_seed=4, base=8, steps=3, batch_size=16, warmup_steps=1)
    model = train_digit_unet(schedule, images, labels, **kwargs)
    assert not model.training
    # the same run written out with the package's classes
    unet = UNet8(channels=1, base=8, mult=2, T=50, num_classes=10,
                 generator=torch.Generator().manual_seed(3))
    config = TrainConfig(steps=3, batch_size=16, lr=2e-3, warmup_steps=1, ema_decay=0.995,
                         label_dropout=0.1, device="cpu", seed=4, log_every=100, progress=False)
    trainer = Trainer(unet, schedule, images, labels, config)
    trainer.train()
    for a, b in zip(model.state_dict().values(), trainer.ema_model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    # without labels the network is unconditional; another training seed gives other weights
    plain = train_digit_unet(schedule, images, **kwargs)
    other = train_digit_unet(schedule, images, **{**kwargs, "train_seed": 5})
    assert plain.num_classes == 0
    assert not all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                      other.state_dict().values(), strict=True))


def test_train_digit_unet_bad_input():
    schedule = Schedule.su(50)
    images, labels = load_digits()
    with pytest.raises(TypeError, match="`schedule`"):
        train_digit_unet(None, images, init_seed=0, train_seed=0)
    with pytest.raises(ValueError, match="`images`"):
        train_digit_unet(schedule, images.reshape(-1, 64), init_seed=0, train_seed=0)
    with pytest.raises(ValueError, match="`labels`"):
        train_digit_unet(schedule, images, labels.float(), init_seed=0, train_seed=0)
    with pytest.raises(ValueError, match="`labels`"):
        train_digit_unet(schedule, images, labels[:10], init_seed=0, train_seed=0)
    with pytest.raises(ValueError, match="`init_seed`"):
        train_digit_unet(schedule, images, init_seed=-1, train_seed=0)
    with pytest.raises(ValueError, match="`train_seed`"):
        train_digit_unet(schedule, images, init_seed=0, train_seed=1.5)
