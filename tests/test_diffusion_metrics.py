"""Tests of kexue_nb.diffusion.metrics against SciPy, closed forms and the shipped feature net."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from kexue_nb.diffusion.data import load_digits
from kexue_nb.diffusion.metrics import (
    DigitsFeatureNet,
    digits_features,
    energy_distance,
    frechet_digits_distance,
    frechet_distance,
    gaussian_fit_sample,
    load_feature_net,
    noise_floor,
    sliced_wasserstein,
)
from kexue_nb.diffusion.train_features import HELD_OUT_SEED, split_digits, train_feature_net


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_energy_distance_against_scipy_and_known_values():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=300), rng.normal(0.5, 2.0, size=200)
    assert energy_distance(u, v) == pytest.approx(scipy.stats.energy_distance(u, v), rel=1e-10)
    assert energy_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0, 6.0]])) == pytest.approx(
        math.sqrt(2 * 5.0), rel=1e-12)  # single points: √(2‖a − b‖)
    x = torch.randn(150, 3, generator=_gen(1), dtype=torch.float64)
    assert energy_distance(x, x) == 0.0
    y = torch.randn(120, 3, generator=_gen(2), dtype=torch.float64) + 0.3
    cd = scipy.spatial.distance.cdist
    xn, yn = x.numpy(), y.numpy()
    d2 = 2 * cd(xn, yn).mean() - cd(xn, xn).mean() - cd(yn, yn).mean()
    assert energy_distance(x, y) == pytest.approx(math.sqrt(d2), rel=1e-10)


def test_sliced_wasserstein_1d_and_known_shift():
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=257), rng.exponential(size=131)
    assert sliced_wasserstein(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v),
                                                     rel=1e-10)
    a, b = rng.normal(size=100), rng.normal(size=100)
    w2 = math.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert sliced_wasserstein(a, b, p=2) == pytest.approx(w2, rel=1e-10)
    x = torch.randn(400, 2, generator=_gen(4), dtype=torch.float64)
    assert sliced_wasserstein(x, x, generator=_gen(5)) == 0.0
    # translation by c: W1 of each projection is |θ·c|, whose mean over the circle is 2‖c‖/π
    c = torch.tensor([0.6, -0.8], dtype=torch.float64)
    P = 4000
    sw = sliced_wasserstein(x, x + c, n_projections=P, generator=_gen(6))
    se = math.sqrt(0.5 - 4 / math.pi**2) / math.sqrt(P)
    assert sw == pytest.approx(2 / math.pi, abs=5 * se)
    sw2 = sliced_wasserstein(x, x + c, n_projections=P, generator=_gen(6), p=2)
    assert sw2 == pytest.approx(math.sqrt(0.5), abs=0.02)
    # seeded
    y = torch.randn(300, 2, generator=_gen(7), dtype=torch.float64)
    assert sliced_wasserstein(x, y, generator=_gen(8)) == sliced_wasserstein(x, y,
                                                                             generator=_gen(8))


def test_frechet_distance_closed_forms_and_sqrtm():
    # 1-D: (μ1 − μ2)² + (σ1 − σ2)²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1, rel=1e-12)
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    ref = (np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2)
           - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real))
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-9)


def test_feature_net_and_frechet_digits_distance():
    net = load_feature_net()
    assert isinstance(net, DigitsFeatureNet)
    x, y = load_digits()
    with torch.inference_mode():
        acc = (net(x).argmax(1) == y).double().mean().item()
    assert acc > 0.97  # the shipped weights classify the digits
    f = digits_features(x[:10], net)
    assert f.shape == (10, 64) and f.dtype == np.float64
    # a set against itself: 0 up to round-off (relative to the feature variance Tr Σ ≈ 300)
    tr = np.trace(np.cov(digits_features(x[:500], net), rowvar=False))
    assert 0.0 <= frechet_digits_distance(x[:500], x[:500], net) < 1e-6 * tr
    floor = noise_floor(lambda a, b: frechet_digits_distance(a, b, net), x, 400, _gen(10), 3)
    noise = 2 * torch.rand(400, 1, 8, 8, generator=_gen(11)) - 1
    real_vs_noise = frechet_digits_distance(x[:400], noise, net)
    assert floor.mean > 0 and real_vs_noise > 20 * (floor.mean + 3 * floor.std)


def test_noise_floor():
    ref = torch.arange(100, dtype=torch.float64)[:, None]

    def overlap(a, b):  # the two subsets are disjoint
        return float(len(set(a[:, 0].tolist()) & set(b[:, 0].tolist())))

    assert noise_floor(overlap, ref, 50, _gen(), 4) == (0.0, 0.0, (0.0,) * 4)
    x = torch.randn(2000, 2, generator=_gen(12), dtype=torch.float64)
    a = noise_floor(energy_distance, x, 300, _gen(13), 5)
    b = noise_floor(energy_distance, x, 300, _gen(13), 5)
    assert a == b and len(a.values) == 5
    assert a.std == pytest.approx(np.std(a.values, ddof=1))
    # the floor shrinks with the sample size (roughly like n^{-1/2})
    c = noise_floor(energy_distance, x, 30, _gen(13), 5)
    assert c.mean > 1.5 * a.mean


def test_train_feature_net_is_seeded():
    net1, acc1 = train_feature_net(seed=1, epochs=1, batch_size=256, progress=False)
    net2, acc2 = train_feature_net(seed=1, epochs=1, batch_size=256, progress=False)
    for (k, v1), v2 in zip(net1.state_dict().items(), net2.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    assert acc1 == acc2 and acc1 > 0.3  # learning (chance is 0.1) after 6 steps


def test_split_digits_is_the_shipped_networks_held_out_set():
    train, held_out = split_digits(1797, _gen(HELD_OUT_SEED))
    assert (len(train), len(held_out)) == (1437, 360)
    assert torch.equal(torch.sort(torch.cat([train, held_out])).values, torch.arange(1797))
    train2, _ = split_digits(1797, _gen(HELD_OUT_SEED))
    assert torch.equal(train, train2)
    # the shipped weights' recipe records their held-out accuracy; this split reproduces it
    x, y = load_digits()
    recipe = dict(kv.split("=") for kv in _shipped_recipe().split())
    assert recipe["seed"] == str(HELD_OUT_SEED)
    with torch.inference_mode():
        accuracy = (load_feature_net()(x[held_out]).argmax(1) == y[held_out]).double().mean().item()
    assert accuracy == pytest.approx(float(recipe["heldout_accuracy"]), abs=5e-5)
    with pytest.raises(TypeError, match="`n` must be an integer"):
        split_digits(10.0, _gen())
    with pytest.raises(ValueError, match="`n` must be an integer in"):
        split_digits(1, _gen())
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        split_digits(10, 0)


def _shipped_recipe():
    from safetensors import safe_open

    from kexue_nb.diffusion.metrics import FEATURES_PATH

    with safe_open(str(FEATURES_PATH), "pt") as f:
        return f.metadata()["recipe"]


def test_bad_input():
    x2, x3 = torch.zeros(5, 2), torch.zeros(5, 3)
    with pytest.raises(ValueError, match="`y` must have x's dimension 2"):
        energy_distance(x2, x3)
    with pytest.raises(ValueError, match="`x` must have shape"):
        sliced_wasserstein(torch.zeros(2, 2, 2), x2)
    with pytest.raises(ValueError, match="`x` must be finite"):
        energy_distance(torch.tensor([1.0, float("nan")]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="`n_projections` must be a positive integer"):
        sliced_wasserstein(x2, x2, n_projections=0)
    with pytest.raises(ValueError, match="`p` must be 1 or 2"):
        sliced_wasserstein(x2, x2, p=3)
    with pytest.raises(ValueError, match=r"`cov2` must have shape \(1, 1\)"):
        frechet_distance([0.0], [[1.0]], [0.0], np.eye(2))
    with pytest.raises(ValueError, match="`mu2` must have mu1's shape"):
        frechet_distance([0.0], [[1.0]], [0.0, 1.0], [[1.0]])
    with pytest.raises(ValueError, match=r"`x` must be digits of shape \(N, 1, 8, 8\)"):
        digits_features(torch.zeros(4, 1, 7, 7))
    with pytest.raises(ValueError, match=r"`y` must be digits of shape"):
        frechet_digits_distance(torch.zeros(4, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="`path` must name the feature weights file"):
        load_feature_net("/nonexistent/weights.safetensors")
    with pytest.raises(ValueError, match=r"`n` must be an integer in 1\.\.len\(reference\)//2 = 2"):
        noise_floor(energy_distance, x2, 3, _gen(), 3)
    with pytest.raises(ValueError, match=r"`repeats` must be an integer in 2\.\.10000"):
        noise_floor(energy_distance, x2, 2, _gen(), 1)
    with pytest.raises(ValueError, match="`epochs` must be a positive integer"):
        train_feature_net(epochs=0)


def test_no_silent_wrong_answers_issue_15():
    """frechet_distance(0, −I, 0, I) returned 0; complex data gave an energy distance of 0; huge
    samples hung."""
    with pytest.raises(ValueError, match="`cov1` must be positive semidefinite"):
        frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="`cov2` must be a symmetric"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), [[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="`mu1` must be a vector"):
        frechet_distance(0.0, -np.eye(1), 0.0, np.eye(1))
    with pytest.raises(ValueError, match="`x` must be a real array or tensor, got complex"):
        energy_distance(np.array([[1j, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="`x` and `y` are too large"):
        energy_distance(torch.zeros(10**5, 2), torch.zeros(10**5, 2))
    with pytest.raises(ValueError, match="`metric` returned a non-finite value"):
        noise_floor(lambda a, b: math.nan, torch.zeros(8, 2), 2)
    with pytest.raises(TypeError, match="`x` must have the network's dtype"):
        DigitsFeatureNet()(torch.zeros(2, 1, 8, 8, dtype=torch.float64))


def test_gaussian_fit_sample_matches_the_data_moments():
    # correlated 3-D data with one constant coordinate (like the digits' corner pixels)
    g = _gen(1)
    z = torch.randn(5000, 2, generator=g, dtype=torch.float64)
    data = torch.stack([z[:, 0], 0.6 * z[:, 0] + 0.8 * z[:, 1], torch.full((5000,), 0.25,
                        dtype=torch.float64)], dim=1)
    draws = gaussian_fit_sample(data, 200_000, _gen(2))
    assert draws.shape == (200_000, 3) and draws.dtype == torch.float64
    assert torch.all(draws[:, 2] == 0.25)
    # 5 standard errors of a mean (sd <= 1) and of a covariance entry (sd <= sqrt(2)) at n = 2e5
    se = 1 / math.sqrt(200_000)
    assert torch.allclose(draws.mean(0), data.mean(0), atol=5 * se)
    assert torch.allclose(torch.cov(draws.T), torch.cov(data.T), atol=5 * math.sqrt(2) * se)
    # the event shape and dtype of the data come back; one seed, one answer
    images = data[:, :2].float().reshape(5000, 1, 2, 1)
    a, b = gaussian_fit_sample(images, 7, _gen(3)), gaussian_fit_sample(images, 7, _gen(3))
    assert a.shape == (7, 1, 2, 1) and a.dtype == torch.float32 and torch.equal(a, b)


def test_gaussian_fit_sample_bad_input():
    data = torch.randn(10, 2, generator=_gen())
    with pytest.raises(ValueError, match="`data`"):
        gaussian_fit_sample(data[:1], 5)
    with pytest.raises(ValueError, match="`data`"):
        gaussian_fit_sample(torch.arange(10), 5)
    with pytest.raises(ValueError, match="`data`"):
        gaussian_fit_sample(torch.full((10, 2), math.nan), 5)
    with pytest.raises(ValueError, match="`data`"):
        gaussian_fit_sample(data.numpy(), 5)
    with pytest.raises(ValueError, match="`n`"):
        gaussian_fit_sample(data, 0)
    with pytest.raises(TypeError, match="`generator`"):
        gaussian_fit_sample(data, 5, generator=0)
