"""Tests of kexue_nb.diffusion.models: the ε-networks, the noisy classifier, the registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue_nb.diffusion.models import (
    MLPDenoiser,
    NoisyClassifier,
    UNet8,
    build_model,
    count_parameters,
    init_weights_,
    timestep_embedding,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# timestep_embedding
def test_timestep_embedding_known_values():
    t = torch.tensor([1, 50, 100])
    emb = timestep_embedding(t, 8, T=100)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    # s = t·1000/T; frequencies 10000^(-k/4), k = 0..3
    s = torch.tensor([10.0, 500.0, 1000.0], dtype=torch.float64)
    freqs = 10000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    expected = torch.cat([torch.sin(s[:, None] * freqs), torch.cos(s[:, None] * freqs)], 1)
    torch.testing.assert_close(emb.double(), expected, atol=2e-4, rtol=0)
    assert emb[2, 0].item() == pytest.approx(math.sin(1000.0), abs=2e-4)


def test_timestep_embedding_same_for_same_fraction_of_T():
    a = timestep_embedding(torch.tensor([10]), 16, T=100)
    b = timestep_embedding(torch.tensor([100]), 16, T=1000)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dim": 7}, "`dim` must be even"),
    ({"dim": 0}, "`dim` must be an integer >= 2"),
    ({"T": 0}, "`T` must be an integer >= 1"),
    ({"t": torch.ones(2, 2, dtype=torch.long)}, "`t` must have shape"),
])
def test_timestep_embedding_bad_input(kwargs, match):
    args = {"t": torch.tensor([1, 2]), "dim": 8, "T": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        timestep_embedding(**args)


# --------------------------------------------------------------------------------------
# count_parameters, init_weights_
def test_count_parameters_known_value():
    assert count_parameters(nn.Linear(3, 4)) == 16
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    frozen[0].requires_grad_(False)
    assert count_parameters(frozen) == 5


def test_count_parameters_bad_input():
    with pytest.raises(ValueError, match="`model` must be a torch.nn.Module"):
        count_parameters("net")


def test_init_weights_reproducible_and_within_default_bounds():
    a = MLPDenoiser(hidden=16, depth=2, T=10, num_classes=3, generator=gen(1))
    b = MLPDenoiser(hidden=16, depth=2, T=10, num_classes=3, generator=gen(1))
    c = MLPDenoiser(hidden=16, depth=2, T=10, num_classes=3, generator=gen(2))
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(a.inp.weight, c.inp.weight)
    # PyTorch's default law: |w| <= 1/sqrt(fan_in), and it fills that range
    w = a.blocks[0].inner.weight
    bound = 1 / math.sqrt(16)
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound
    assert torch.equal(a.blocks[0].norm.weight, torch.ones(16))


def test_init_weights_bad_input():
    with pytest.raises(ValueError, match="`generator` must be a torch.Generator"):
        init_weights_(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="`model` must be a torch.nn.Module"):
        init_weights_(None, gen())


# --------------------------------------------------------------------------------------
# MLPDenoiser
def test_mlp_shapes_and_batch_independence():
    model = MLPDenoiser(dim=3, hidden=32, depth=2, T=50, generator=gen())
    x = torch.randn(5, 3, generator=gen(1))
    t = torch.tensor([1, 10, 20, 30, 50])
    out = model(x, t)
    assert out.shape == (5, 3)
    # each sample's output depends on that sample only (no batch statistics)
    torch.testing.assert_close(model(x[2:3], t[2:3]), out[2:3])


def test_mlp_conditional_null_label_and_labels_matter():
    model = MLPDenoiser(hidden=32, depth=2, T=50, num_classes=4, generator=gen())
    x = torch.randn(6, 2, generator=gen(1))
    t = torch.full((6,), 25)
    null = torch.full((6,), 4)
    torch.testing.assert_close(model(x, t), model(x, t, null))  # y=None means the null label
    out0 = model(x, t, torch.zeros(6, dtype=torch.long))
    out1 = model(x, t, torch.ones(6, dtype=torch.long))
    assert (out0 - out1).abs().max() > 1e-3


def test_mlp_time_matters():
    model = MLPDenoiser(hidden=32, depth=2, T=50, generator=gen())
    x = torch.randn(4, 2, generator=gen(1))
    assert (model(x, torch.full((4,), 1)) - model(x, torch.full((4,), 50))).abs().max() > 1e-3


@pytest.mark.parametrize(("call", "match"), [
    (lambda m: m(torch.zeros(2, 3), torch.ones(2, dtype=torch.long)), r"`x_t` must have shape"),
    (lambda m: m(torch.zeros(2, 2), torch.ones(2)), r"`t` must be a long tensor"),
    (lambda m: m(torch.zeros(2, 2), torch.tensor([0, 1])), r"`t` must lie in 1..50"),
    (lambda m: m(torch.zeros(2, 2), torch.tensor([1, 51])), r"`t` must lie in 1..50"),
    (lambda m: m(torch.zeros(2, 2), torch.tensor([1, 2]), torch.tensor([0, 5])),
     r"`y` must lie in 0..4"),
    (lambda m: m(torch.zeros(2, 2), torch.tensor([1, 2]), torch.tensor([0.0, 1.0])),
     r"`y` must be a long tensor"),
])
def test_mlp_bad_forward_input(call, match):
    model = MLPDenoiser(hidden=8, depth=1, T=50, num_classes=4)
    with pytest.raises(ValueError, match=match):
        call(model)


def test_mlp_unconditional_rejects_labels():
    model = MLPDenoiser(hidden=8, depth=1, T=50)
    with pytest.raises(ValueError, match="`y` must be None for an unconditional model"):
        model(torch.zeros(2, 2), torch.tensor([1, 2]), torch.tensor([0, 0]))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dim": 0}, "`dim` must be an integer >= 1"),
    ({"hidden": 7}, "`hidden` must be even"),
    ({"depth": 0}, "`depth` must be an integer >= 1"),
    ({"T": 0}, "`T` must be an integer >= 1"),
    ({"num_classes": -1}, "`num_classes` must be an integer >= 0"),
])
def test_mlp_bad_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPDenoiser(**kwargs)


# --------------------------------------------------------------------------------------
# UNet8
def test_unet8_shapes_size_and_batch_independence():
    model = UNet8(T=100, num_classes=10, generator=gen())
    assert 400_000 <= count_parameters(model) <= 1_000_000
    x = torch.randn(3, 1, 8, 8, generator=gen(1))
    t = torch.tensor([1, 50, 100])
    y = torch.tensor([0, 9, 10])
    out = model(x, t, y)
    assert out.shape == (3, 1, 8, 8)
    torch.testing.assert_close(model(x[1:2], t[1:2], y[1:2]), out[1:2])  # GroupNorm: per sample
    assert (model(x, t, torch.tensor([3, 3, 3])) - out).abs().max() > 1e-4


def test_unet8_every_parameter_gets_a_gradient():
    model = UNet8(base=8, T=10, num_classes=2, generator=gen())
    x = torch.randn(4, 1, 8, 8, generator=gen(1))
    out = model(x, torch.tensor([1, 3, 5, 10]), torch.tensor([0, 1, 2, 0]))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"base": 12}, "`base` must be a multiple of 8"),
    ({"channels": 0}, "`channels` must be an integer >= 1"),
    ({"mult": 0}, "`mult` must be an integer >= 1"),
])
def test_unet8_bad_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet8(**kwargs)


def test_unet8_bad_forward_input():
    model = UNet8(base=8, T=10)
    with pytest.raises(ValueError, match=r"`x_t` must have shape \(B, 1, 8, 8\)"):
        model(torch.zeros(2, 1, 16, 16), torch.tensor([1, 2]))


# --------------------------------------------------------------------------------------
# NoisyClassifier
def test_noisy_classifier_learns_separable_classes():
    """The 2-D classifier separates two clusters at low noise after a short fit."""
    g = gen(3)
    clf = NoisyClassifier(num_classes=2, kind="mlp", hidden=16, depth=1, T=10, generator=gen())
    opt = torch.optim.Adam(clf.parameters(), lr=2e-2)
    for _ in range(30):
        y = torch.randint(0, 2, (128,), generator=g)
        x = torch.randn(128, 2, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0)
        t = torch.randint(1, 11, (128,), generator=g)
        loss = nn.functional.cross_entropy(clf(x, t), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    y = torch.randint(0, 2, (500,), generator=g)
    x = torch.randn(500, 2, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0)
    with torch.no_grad():
        acc = (clf(x, torch.full((500,), 1)).argmax(1) == y).float().mean().item()
    assert acc > 0.95


def test_noisy_classifier_image_kind_shapes():
    clf = NoisyClassifier(num_classes=10, kind="image", base=8, T=10, generator=gen())
    logits = clf(torch.randn(3, 1, 8, 8, generator=gen(1)), torch.tensor([0, 5, 10]))
    assert logits.shape == (3, 10)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "cnn"}, "`kind` must be 'mlp' or 'image'"),
    ({"num_classes": 1}, "`num_classes` must be an integer >= 2"),
    ({"kind": "image", "base": 4}, "`base` must be an integer >= 8"),
])
def test_noisy_classifier_bad_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyClassifier(**kwargs)


def test_noisy_classifier_bad_forward_input():
    clf = NoisyClassifier(num_classes=2, hidden=8, depth=1, T=10)
    with pytest.raises(ValueError, match=r"`t` must lie in 0..10"):
        clf(torch.zeros(2, 2), torch.tensor([0, 11]))
    with pytest.raises(ValueError, match=r"`x_t` must have shape \(B, 2\)"):
        clf(torch.zeros(2, 3), torch.tensor([0, 1]))


# --------------------------------------------------------------------------------------
# build_model
@pytest.mark.parametrize("model", [
    MLPDenoiser(hidden=16, depth=1, T=20, num_classes=3),
    UNet8(base=8, T=20, num_classes=2),
    NoisyClassifier(num_classes=3, kind="image", base=8, T=20),
])
def test_build_model_round_trip(model):
    rebuilt = build_model(type(model).__name__, model.config)
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    shape = (2, 2) if isinstance(model, MLPDenoiser) else (2, 1, 8, 8)
    x, t = torch.randn(shape, generator=gen()), torch.tensor([1, 20])
    torch.testing.assert_close(rebuilt(x, t), model(x, t), rtol=0, atol=0)


def test_build_model_aliases():
    assert isinstance(build_model("mlp", {"hidden": 8, "depth": 1}), MLPDenoiser)
    assert isinstance(build_model("unet8", {"base": 8}), UNet8)


@pytest.mark.parametrize(("name", "config", "match"), [
    ("Transformer", {}, "`name` must be one of"),
    ("mlp", {"width": 3}, "`config` does not fit MLPDenoiser"),
    ("mlp", [1, 2], "`config` must be a dict"),
    ("mlp", {"hidden": 3}, "`hidden` must be even"),
])
def test_build_model_bad_input(name, config, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, config)


def test_clear_errors_issue_15():
    """A float64 or integer x_t on a float32 model gave a raw RuntimeError; huge sizes ran out of
    memory; a non-tensor t gave an AttributeError."""
    model = MLPDenoiser(hidden=8, depth=1, T=10)
    t = torch.full((3,), 5)
    with pytest.raises(TypeError, match="`x_t` must have the model's dtype"):
        model(torch.zeros(3, 2, dtype=torch.float64), t)
    with pytest.raises(TypeError, match="`x_t` must have the model's dtype"):
        model(torch.zeros(3, 2, dtype=torch.long), t)
    with pytest.raises(TypeError, match="`t` must be a torch tensor"):
        model(torch.zeros(3, 2), [5, 5, 5])
    with pytest.raises(ValueError, match=r"`hidden` must be an integer in 2\.\.8192"):
        MLPDenoiser(hidden=10**6)
    with pytest.raises(ValueError, match="`hidden`, `depth` or `num_classes` too large"):
        MLPDenoiser(hidden=8192, depth=256)
    with pytest.raises(ValueError, match="`t` must be finite"):
        timestep_embedding(torch.tensor([1.0, float("nan")]), 4, 10)
