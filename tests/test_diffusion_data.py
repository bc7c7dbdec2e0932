"""Tests of kexue_nb.diffusion.data: toy sets, the exact LabelledMixture, the digits."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from kexue_nb.diffusion.data import (
    ExactDenoiser,
    LabelledMixture,
    eight_gaussians,
    load_digits,
    moons,
    swiss_roll,
)
from kexue_nb.diffusion.schedule import Schedule

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mixture():
    return LabelledMixture([[-1.0, 0.5], [1.5, 1.0], [0.0, -1.5]], [0.5, 0.3, 0.7],
                           weights=[0.5, 0.3, 0.2], labels=[0, 1, 1])


def _scipy_log_prob(mix, x, ab, bb, comps=None):
    comps = range(mix.num_components) if comps is None else comps
    dens = sum(mix.weights[k].item() * multivariate_normal(
        ab * mix.means[k].numpy(), (ab**2 * mix.stds[k].item() ** 2 + bb**2) * np.eye(2)).pdf(x)
        for k in comps)
    return np.log(dens)


def test_toy_sets_shapes_seeding_and_geometry():
    for make in (moons, swiss_roll, eight_gaussians):
        a, b, c = make(500, _gen(1)), make(500, _gen(1)), make(500, _gen(2))
        assert a.shape == (500, 2) and a.dtype == torch.float32
        assert torch.equal(a, b) and not torch.equal(a, c)
    # noiseless moons lie on the two unit half circles; the set is centred
    x = moons(2000, _gen(), noise=0.0).double() + torch.tensor([0.5, 0.25], dtype=F64)
    upper = (x.norm(dim=1) - 1).abs() < 1e-6
    lower = ((x - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1) - 1).abs() < 1e-6
    assert bool((upper | lower).all())
    assert bool((x[upper & ~lower, 1] >= -1e-6).all())
    assert bool((x[lower & ~upper, 1] <= 0.5 + 1e-6).all())
    xm = moons(20_000, _gen(3)).double()
    assert xm.mean(0).abs().max().item() < 5 * xm.std(0).max().item() / math.sqrt(20_000)
    # noiseless Swiss roll: radius 5‖x‖ = θ ∈ [1.5π, 4.5π] and the polar angle is θ mod 2π
    r = swiss_roll(1000, _gen(), noise=0.0).double()
    theta = 5 * r.norm(dim=1)
    assert theta.min().item() >= 1.5 * math.pi - 1e-5 and theta.max().item() <= 4.5 * math.pi + 1e-5
    ang = torch.atan2(r[:, 1], r[:, 0])
    assert torch.allclose(torch.cos(ang), torch.cos(theta), atol=1e-5)
    # eight Gaussians: radius 2, component std 0.1
    e = eight_gaussians(4000, _gen()).double()
    assert (e.norm(dim=1) - 2).abs().mean().item() == pytest.approx(0.1 * math.sqrt(2 / math.pi),
                                                                  rel=0.05)


def test_load_digits_matches_sklearn():
    from sklearn.datasets import load_digits as sk

    x, y = load_digits()
    ref = sk()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    np.testing.assert_allclose(x.numpy()[:, 0], ref.images / 8 - 1, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), ref.target)


def test_log_prob_against_scipy_clean_and_noisy():
    mix = _mixture()
    x = torch.randn(7, 2, generator=_gen(4), dtype=F64)
    np.testing.assert_allclose(mix.log_prob(x).numpy(), _scipy_log_prob(mix, x.numpy(), 1, 0),
                               rtol=1e-10)
    ab, bb = 0.6, 0.8
    np.testing.assert_allclose(mix.log_prob(x, ab, bb).numpy(),
                               _scipy_log_prob(mix, x.numpy(), ab, bb), rtol=1e-10)
    # class-conditional: class 1 holds components 1, 2 with prior 0.5
    np.testing.assert_allclose(mix.log_prob(x, ab, bb, y=1).numpy(),
                               _scipy_log_prob(mix, x.numpy(), ab, bb, [1, 2]) - math.log(0.5),
                               rtol=1e-10)


def test_score_posterior_mean_eps_and_class_posterior_identities():
    mix = _mixture()
    x = torch.randn(9, 2, generator=_gen(5), dtype=F64) * 2
    ab = torch.linspace(0.1, 0.95, 9, dtype=F64)  # per-sample times
    bb = torch.sqrt(1 - ab**2)
    # score against autograd of the noisy log-density
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(mix.log_prob(xg, ab, bb).sum(), xg)
    torch.testing.assert_close(mix.score(x, ab, bb), auto, rtol=0, atol=1e-12)
    # Tweedie: ᾱ E[x_0|x_t] = x_t + β̄² ∇log p_t(x_t)
    torch.testing.assert_close(ab[:, None] * mix.posterior_mean(x, ab, bb),
                               x + bb[:, None] ** 2 * mix.score(x, ab, bb), rtol=0, atol=1e-12)
    # ε* = −β̄ ∇log p_t, also class-conditionally
    torch.testing.assert_close(mix.eps(x, ab, bb), -bb[:, None] * mix.score(x, ab, bb),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(mix.eps(x, ab, bb, y=0), -bb[:, None] * mix.score(x, ab, bb, y=0),
                               rtol=0, atol=1e-12)
    # Bayes: p_t(y|x) = p(y) p_t(x|y)/p_t(x)
    post = mix.class_posterior(x, ab, bb)
    prior = torch.tensor([0.5, 0.5], dtype=F64)
    bayes = torch.stack([prior[c].log() + mix.log_prob(x, ab, bb, y=c) for c in (0, 1)], 1)
    torch.testing.assert_close(post, (bayes - mix.log_prob(x, ab, bb)[:, None]).exp(),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(post.sum(1), torch.ones(9, dtype=F64))
    torch.testing.assert_close(mix.class_posterior(x, ab, bb, log=True).exp(), post)


def test_posterior_mean_single_gaussian_closed_form():
    mix = LabelledMixture([[0.7, -0.2]], 0.4)
    x = torch.randn(5, 2, generator=_gen(6), dtype=F64)
    ab, bb = 0.5, math.sqrt(0.75)
    m = torch.tensor([0.7, -0.2], dtype=F64)
    expected = m + ab * 0.16 / (ab**2 * 0.16 + bb**2) * (x - ab * m)
    torch.testing.assert_close(mix.posterior_mean(x, ab, bb), expected, rtol=0, atol=1e-14)


def test_sample_moments_and_labels():
    mix = _mixture()
    n = 20_000
    x, y = mix.sample(n, _gen(7), dtype=F64)
    assert x.shape == (n, 2) and y.dtype == torch.long
    assert mix.sample(5, _gen(7))[0].dtype == torch.float32
    mean = (mix.weights[:, None] * mix.means).sum(0)
    assert (x.mean(0) - mean).abs().max().item() < 5 * x.std(0).max().item() / math.sqrt(n)
    frac1 = (y == 1).double().mean().item()
    assert frac1 == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / n))


def test_exact_denoiser_and_classifier():
    mix, s = _mixture(), Schedule.su(100)
    model = mix.denoiser(s)
    assert isinstance(model, ExactDenoiser) and model.num_classes == 2 and model.T == 100
    x = torch.randn(4, 2, generator=_gen(8))
    t = torch.tensor([1, 10, 50, 100])
    y = torch.tensor([0, 2, 1, 2])  # 2 is the null label
    out = model(x, t, y)
    assert out.dtype == torch.float32
    ab, bb = s.alpha_bar[t], s.beta_bar[t]
    expected_u = mix.eps(x.double(), ab, bb)
    torch.testing.assert_close(model(x, t).double(), expected_u, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1].double(), expected_u[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0].double(), mix.eps(x.double(), ab, bb, y=0)[0],
                               rtol=0, atol=1e-6)
    logits = mix.classifier(s)(x.double(), t)
    torch.testing.assert_close(logits.exp(), mix.class_posterior(x.double(), ab, bb))


def test_bad_input():
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        moons(0)
    with pytest.raises(ValueError, match="`noise` must be a finite number >= 0"):
        swiss_roll(10, noise=-1.0)
    with pytest.raises(ValueError, match=r"`means` must have shape \(K, d\)"):
        LabelledMixture([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="`stds` must be positive"):
        LabelledMixture([[0.0], [1.0]], [1.0, -1.0])
    with pytest.raises(ValueError, match="`weights` must be 2 positive numbers summing to 1"):
        LabelledMixture([[0.0], [1.0]], 1.0, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="`labels` must use every class"):
        LabelledMixture([[0.0], [1.0]], 1.0, labels=[0, 2])
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        LabelledMixture.ring(0)
    mix = _mixture()
    with pytest.raises(ValueError, match=r"`x` must be a tensor of shape \(n, 2\)"):
        mix.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="`alpha_bar_t` must be a number or a tensor of shape"):
        mix.score(torch.zeros(3, 2), torch.ones(2), 0.5)
    with pytest.raises(ValueError, match="`beta_bar_t` must be > 0"):
        mix.eps(torch.zeros(3, 2), 1.0, 0.0)
    with pytest.raises(ValueError, match=r"`y` must be a class id in 0\.\.1"):
        mix.posterior_mean(torch.zeros(3, 2), 0.5, 0.5, y=2)
    with pytest.raises(ValueError, match="`alpha_bar` and `beta_bar` must not both be 0"):
        mix.log_prob(torch.zeros(3, 2), 0.0, 0.0)


def test_no_silent_wrong_answers_issue_15():
    """radius=inf and NaN means used to give NaN samples; std=nan blamed `stds`; complex means
    were cut to their real part; float labels were truncated; a long dtype truncated samples."""
    with pytest.raises(ValueError, match="`radius` must be a finite number"):
        eight_gaussians(4, radius=math.inf)
    with pytest.raises(ValueError, match="`std` must not contain NaN"):
        eight_gaussians(4, std=math.nan)
    with pytest.raises(ValueError, match="`means` must not contain NaN"):
        LabelledMixture([[math.nan, 0.0]], 1.0)
    with pytest.raises(ValueError, match="`means` must be real"):
        LabelledMixture(np.array([[1j, 0.0]]), 1.0)
    mix = _mixture()
    with pytest.raises(TypeError, match="`y` must be a class id"):
        mix.log_prob(torch.zeros(3, 2), y=torch.tensor([0.7, 0.0, 1.0]))
    with pytest.raises(TypeError, match="`dtype` must be a floating torch dtype"):
        mix.sample(3, dtype=torch.long)
    with pytest.raises(ValueError, match="`n` must be a positive integer <= 10000000"):
        moons(10**9)
    with pytest.raises(TypeError, match="`x_t` must have a floating dtype"):
        ExactDenoiser(mix, Schedule.su(10))(torch.ones(3, 2, dtype=torch.long), torch.full((3,), 2))


def test_noisy_sample_is_sample_then_noise_then_q_sample():
    schedule = Schedule.su(100)
    mix = LabelledMixture([[-1.0, 0.0], [1.0, 0.5]], [0.2, 0.3], labels=[0, 1])
    x0, x_t, y = mix.noisy_sample(300, 40, schedule, torch.Generator().manual_seed(5), dtype=F64)
    g = torch.Generator().manual_seed(5)
    x0_ref, y_ref = mix.sample(300, g, dtype=F64)
    noise = torch.randn(x0_ref.shape, generator=g, dtype=F64)
    assert torch.equal(x0, x0_ref) and torch.equal(y, y_ref)
    assert torch.equal(x_t, schedule.alpha_bar[40] * x0_ref + schedule.beta_bar[40] * noise)
    # a step per draw, and float32 output by default
    t = torch.arange(1, 301) % 100 + 1
    x0_32, x_t32, _ = mix.noisy_sample(300, t, schedule, torch.Generator().manual_seed(5))
    assert x0_32.dtype == x_t32.dtype == torch.float32
    assert torch.allclose(x_t32.double(), schedule.q_sample(x0_ref, t, noise), atol=1e-6)


def test_noisy_sample_refuses_bad_input_before_drawing():
    schedule = Schedule.su(100)
    mix = LabelledMixture([[0.0, 0.0]], [1.0])
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    with pytest.raises(ValueError, match="`t`"):
        mix.noisy_sample(10, 101, schedule, g)
    with pytest.raises(TypeError, match="`dtype`"):
        mix.noisy_sample(10, 5, schedule, g, dtype=torch.long)
    with pytest.raises(TypeError, match="`schedule`"):
        mix.noisy_sample(10, 5, None, g)
    assert torch.equal(g.get_state(), state)
