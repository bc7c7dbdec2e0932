"""Tests for kexue_nb.sde: Euler–Maruyama, exact laws, the 1-D Fokker–Planck solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

from kexue_nb import sde


def ou_drift(theta: float):
    return lambda x, t: -theta * x


def const(value: float):
    return lambda x, t: value + 0 * x


def gaussian_cells(edges: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """Exact cell averages of N(mean, sd²)."""
    return np.diff(scipy.stats.norm.cdf(edges, mean, sd)) / np.diff(edges)


# -- Euler–Maruyama ---------------------------------------------------------------------------
def test_euler_maruyama_one_step_is_the_discretisation():
    x0 = np.array([0.5, -1.0, 2.0])
    paths = sde.euler_maruyama(
        lambda x, t: np.sin(x) + t, const(0.7), x0, 0.04, 1, generator=np.random.default_rng(3),
        t0=1.0, progress=False,
    )
    eps = np.random.default_rng(3).standard_normal(3)
    expected = x0 + (np.sin(x0) + 1.0) * 0.04 + 0.7 * 0.2 * eps
    np.testing.assert_allclose(paths.x[-1], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(paths.t, [1.0, 1.04])


def test_euler_maruyama_ou_moments_numpy():
    n, theta, g = 40_000, 1.5, 0.8
    paths = sde.euler_maruyama(
        ou_drift(theta), const(g), np.full(n, 2.0), 0.005, 200,
        generator=np.random.default_rng(0), save_every=100, progress=False,
    )
    assert paths.x.shape == (3, n)
    np.testing.assert_allclose(paths.t, [0.0, 0.5, 1.0])
    mean, var = sde.ou_mean_var(1.0, theta, g, m0=2.0)
    x = paths.x[-1]
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / n)
    # variance: 4 standard errors plus the O(θΔt) bias of Euler–Maruyama
    assert abs(x.var() - var) < 4 * var * math.sqrt(2 / n) + var * theta * 0.005


def test_euler_maruyama_torch_matches_law_and_is_seeded():
    n, theta, g = 8_000, 1.0, 1.0  # small: torch's per-op overhead dominates on a busy CPU
    x0 = torch.zeros(n, 2, dtype=torch.float64)

    def run(seed: int):
        return sde.euler_maruyama(
            lambda x, t: -theta * x, lambda x, t: g, x0, 0.02, 50,
            generator=torch.Generator().manual_seed(seed), progress=False,
        )

    first, again = run(0), run(0)
    assert isinstance(first.x, torch.Tensor) and first.x.shape == (2, n, 2)
    assert torch.equal(first.x, again.x)
    _, var = sde.ou_mean_var(1.0, theta, g)
    sample_var = first.x[-1].var(dim=0).numpy()
    np.testing.assert_allclose(sample_var, var, atol=4 * var * math.sqrt(2 / n) + 0.02 * var)


def test_euler_maruyama_matrix_noise_matches_linear_gaussian():
    a = np.array([[-1.0, 0.5], [0.0, -2.0]])
    gm = np.array([[1.0, 0.0], [0.6, 0.8]])
    n = 20_000
    paths = sde.euler_maruyama(
        lambda x, t: x @ a.T, lambda x, t: gm, np.zeros((n, 2)), 0.01, 100,
        generator=np.random.default_rng(1), noise="matrix", progress=False,
    )
    _, cov = sde.linear_gaussian(a, gm, 1.0, np.zeros(2), np.zeros((2, 2)))
    sample = np.cov(paths.x[-1].T)
    np.testing.assert_allclose(sample, cov, atol=0.025)  # 4 standard errors + EM bias
    # state-dependent (n, d, m) matrices give the same law when they are all equal
    batched = sde.euler_maruyama(
        lambda x, t: x @ a.T, lambda x, t: np.broadcast_to(gm, (x.shape[0], 2, 2)),
        np.zeros((n, 2)), 0.01, 100, generator=np.random.default_rng(1), noise="matrix",
        progress=False,
    )
    np.testing.assert_allclose(batched.x[-1], paths.x[-1], atol=1e-12)


def test_euler_maruyama_scalar_and_diagonal_noise():
    n = 30_000
    x0 = np.zeros((n, 2))
    # scalar noise with one value per path: half the paths diffuse twice as fast
    scale = np.where(np.arange(n) < n // 2, 1.0, 2.0)
    paths = sde.euler_maruyama(
        const(0.0), lambda x, t: scale, x0, 0.1, 10, generator=np.random.default_rng(2),
        progress=False,
    )
    x = paths.x[-1]
    np.testing.assert_allclose(x[: n // 2].var(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(x[n // 2 :].var(axis=0), 4.0, atol=0.2)
    diag = sde.euler_maruyama(
        const(0.0), lambda x, t: np.array([1.0, 3.0]), x0, 0.1, 10,
        generator=np.random.default_rng(2), noise="diagonal", progress=False,
    )
    np.testing.assert_allclose(diag.x[-1].var(axis=0), [1.0, 9.0], rtol=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, "`dt` must be a positive"),
        ({"dt": -0.1}, "`dt` must be a positive"),
        ({"steps": 0}, "`steps` must be a positive integer"),
        ({"g": const(-1.0)}, "`g` must return positive"),
        ({"g": const(0.0)}, "`g` must return positive"),
        ({"f": lambda x, t: x / 0.0}, "`f` must return finite"),
        ({"generator": 0}, "`generator` must be a numpy.random.Generator"),
        ({"noise": "additive"}, "`noise` must be one of"),
        ({"save_every": 3}, "`save_every` must divide"),
        ({"x0": np.zeros((2, 2, 2))}, "`x0` must have shape"),
        ({"noise": "matrix"}, "`x0` must have shape \\(n, d\\) for matrix noise"),
    ],
)
def test_euler_maruyama_bad_input(kwargs, match):
    args = {
        "f": const(0.0), "g": const(1.0), "x0": np.zeros(4), "dt": 0.1, "steps": 10,
        "generator": np.random.default_rng(0), "progress": False,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match), np.errstate(divide="ignore", invalid="ignore"):
        sde.euler_maruyama(
            args.pop("f"), args.pop("g"), args.pop("x0"), args.pop("dt"), args.pop("steps"),
            **args,
        )


def test_euler_maruyama_torch_needs_torch_generator():
    with pytest.raises(ValueError, match="`generator` must be a torch.Generator"):
        sde.euler_maruyama(
            const(0.0), const(1.0), torch.zeros(3), 0.1, 1,
            generator=np.random.default_rng(0), progress=False,
        )


# -- exact laws -------------------------------------------------------------------------------
def test_ou_mean_var_against_linear_gaussian_and_limits():
    mean, var = sde.ou_mean_var(0.7, 2.0, 1.3, m0=1.0, s0=0.4, mu=-0.5)
    peer_mean, peer_cov = sde.linear_gaussian(
        [[-2.0]], 1.3, 0.7, [1.0], [[0.16]], b=[2.0 * -0.5]
    )
    assert mean == pytest.approx(peer_mean[0], abs=1e-12)
    assert var == pytest.approx(peer_cov[0, 0], abs=1e-12)
    _, stationary = sde.ou_mean_var(50.0, 2.0, 1.3)
    assert stationary == pytest.approx(1.3**2 / 4, rel=1e-12)
    _, small = sde.ou_mean_var(1e-9, 2.0, 1.3)
    assert small == pytest.approx(1.3**2 * 1e-9, rel=1e-8)  # Brownian at short times


def test_ou_density_is_the_gaussian_and_integrates_to_one():
    x = np.linspace(-3, 3, 7)
    mean, var = sde.ou_mean_var(0.5, 1.0, 1.0, m0=1.0)
    np.testing.assert_allclose(
        sde.ou_density(x, 0.5, 1.0, 1.0, m0=1.0),
        scipy.stats.norm.pdf(x, mean, math.sqrt(var)),
        rtol=1e-12,
    )
    total, _ = scipy.integrate.quad(lambda y: sde.ou_density(y, 0.3, 2.0, 0.5, m0=0.2), -10, 10)
    assert total == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"theta": 0.0}, "`theta` must be a positive"),
        ({"g": -1.0}, "`g` must be a positive"),
        ({"g": 0.0}, "`g` must be a positive"),
        ({"t": -1.0}, "`t` must be finite and >= 0"),
        ({"s0": -0.1}, "`s0` must be >= 0"),
    ],
)
def test_ou_mean_var_bad_input(kwargs, match):
    args = {"t": 1.0, "theta": 1.0, "g": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sde.ou_mean_var(args.pop("t"), args.pop("theta"), args.pop("g"), **args)


def test_ou_density_point_mass_at_time_zero():
    with pytest.raises(ValueError, match="`t` must be > 0 when `s0` = 0"):
        sde.ou_density(0.0, 0.0, 1.0, 1.0)


def test_linear_gaussian_against_covariance_ode():
    a = np.array([[-0.5, 1.0], [-1.0, -0.3]])
    gm = np.array([[0.4, 0.1, 0.0], [0.0, 0.7, 0.2]])
    b = np.array([0.3, -0.2])
    m0, s0 = np.array([1.0, -1.0]), np.array([[0.5, 0.1], [0.1, 0.2]])

    def rhs(t, y):
        m, s = y[:2], y[2:].reshape(2, 2)
        return np.concatenate([a @ m + b, (a @ s + s @ a.T + gm @ gm.T).ravel()])

    sol = scipy.integrate.solve_ivp(
        rhs, (0, 1.7), np.concatenate([m0, s0.ravel()]), rtol=1e-11, atol=1e-12
    )
    mean, cov = sde.linear_gaussian(a, gm, 1.7, m0, s0, b=b)
    np.testing.assert_allclose(mean, sol.y[:2, -1], atol=1e-8)
    np.testing.assert_allclose(cov, sol.y[2:, -1].reshape(2, 2), atol=1e-8)


def test_linear_gaussian_brownian_motion_with_singular_drift():
    mean, cov = sde.linear_gaussian(np.zeros((2, 2)), 0.5, 2.0, [1.0, 2.0], np.eye(2), b=[1, -1])
    np.testing.assert_allclose(mean, [3.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(cov, np.eye(2) * (1 + 0.25 * 2.0), atol=1e-14)


def test_lyapunov_covariance_solves_the_equation_and_is_the_limit():
    a = np.array([[-1.0, 2.0], [0.0, -0.5]])
    gm = np.array([[1.0, 0.0], [0.3, 0.5]])
    cov = sde.lyapunov_covariance(a, gm)
    np.testing.assert_allclose(a @ cov + cov @ a.T + gm @ gm.T, 0, atol=1e-12)
    _, late = sde.linear_gaussian(a, gm, 80.0, np.zeros(2), np.eye(2))
    np.testing.assert_allclose(late, cov, atol=1e-10)


def test_linear_gaussian_and_lyapunov_bad_input():
    with pytest.raises(ValueError, match="`A` must be a finite square matrix"):
        sde.linear_gaussian(np.ones((2, 3)), 1.0, 1.0, [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="`G` must be a finite number or a \\(2, m\\) matrix"):
        sde.linear_gaussian(-np.eye(2), np.ones((3, 2)), 1.0, [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="`t` must be >= 0"):
        sde.linear_gaussian(-np.eye(2), 1.0, -1.0, [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="`m0` must be a finite vector of length 2"):
        sde.linear_gaussian(-np.eye(2), 1.0, 1.0, [0, 0, 0], np.eye(2))
    with pytest.raises(ValueError, match="`S0` must be a symmetric"):
        sde.linear_gaussian(-np.eye(2), 1.0, 1.0, [0, 0], [[1, 1], [0, 1]])
    with pytest.raises(ValueError, match="`A` must be stable"):
        sde.lyapunov_covariance(np.eye(2), 1.0)


def test_stationary_density_of_ou_is_gaussian():
    theta, g = 2.0, 0.6
    p = sde.stationary_density(lambda x: theta * x**2 / 2, g)
    x = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(
        p(x), scipy.stats.norm.pdf(x, 0, g / math.sqrt(2 * theta)), rtol=1e-9
    )


def test_stationary_density_double_well_and_bounded_domain():
    p = sde.stationary_density(lambda x: x**4 / 4 - x**2 / 2, 1.0)
    total, _ = scipy.integrate.quad(p, -np.inf, np.inf)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert p(1.0) / p(0.0) == pytest.approx(math.exp(0.5), rel=1e-12)  # exp(-2ΔU/g²)
    flat = sde.stationary_density(lambda x: 0 * x, 1.0, lower=0.0, upper=4.0)
    np.testing.assert_allclose(flat(np.array([-1.0, 0.5, 3.0, 5.0])), [0, 0.25, 0.25, 0])


def test_stationary_density_bad_input():
    with pytest.raises(ValueError, match="`g` must be a positive"):
        sde.stationary_density(lambda x: x**2, 0.0)
    with pytest.raises(ValueError, match="`lower` must be < `upper`"):
        sde.stationary_density(lambda x: x**2, 1.0, lower=1.0, upper=0.0)
    with pytest.raises(ValueError, match="`U` must be a callable"):
        sde.stationary_density(1.0, 1.0)
    with pytest.raises(ValueError, match="`U` must return finite values"):
        sde.stationary_density(lambda x: np.nan * x, 1.0, lower=0.0, upper=1.0)


# -- Fokker–Planck ----------------------------------------------------------------------------
def test_bernoulli_values_and_identity():
    z = np.array([-800.0, -30.0, -1.0, -1e-9, 0.0, 1e-9, 1e-3, 1.0, 30.0, 800.0])
    b = sde.bernoulli(z)
    assert b[4] == 1.0
    assert b[7] == pytest.approx(1 / (math.e - 1), rel=1e-15)
    assert b[6] == pytest.approx(1e-3 / math.expm1(1e-3), rel=1e-15)
    np.testing.assert_allclose(sde.bernoulli(-z), b + z, rtol=1e-13, atol=1e-13)
    assert np.all(b >= 0)


def test_fokker_planck_matrix_conserves_mass_and_is_consistent():
    edges = np.concatenate([np.linspace(-5, 0, 60), np.linspace(0, 5, 121)[1:]])  # non-uniform
    widths = np.diff(edges)
    mat = sde.fokker_planck_matrix(
        lambda x, t: np.sin(x) - x, lambda x, t: 1 + 0.2 * np.cos(x), edges
    ).toarray()
    np.testing.assert_allclose(widths @ mat, 0, atol=1e-12)
    off = mat - np.diag(np.diag(mat))
    assert off.min() >= 0
    # uniform grid, OU: L p ≈ ∂_x(θ x p) + g²/2 p'' on a Gaussian, error O(h²)
    errors = []
    for cells in (100, 200):
        edges = np.linspace(-6, 6, cells + 1)
        x = (edges[:-1] + edges[1:]) / 2
        p = scipy.stats.norm.pdf(x, 0.5, 0.8)
        mat = sde.fokker_planck_matrix(ou_drift(1.0), const(1.0), edges)
        pp = p * ((x - 0.5) ** 2 / 0.64**2 - 1 / 0.64)  # p''
        exact = p + x * (-(x - 0.5) / 0.64 * p) + 0.5 * pp
        errors.append(np.max(np.abs(mat @ p - exact)))
    assert errors[1] < errors[0] / 3.5  # second order


def test_fokker_planck_matrix_annihilates_the_discrete_boltzmann_state():
    # constant drift and diffusion: q_{i+1}/q_i = e^{w} exactly (exponential fitting)
    edges = np.linspace(0, 3, 31)
    x = (edges[:-1] + edges[1:]) / 2
    mat = sde.fokker_planck_matrix(const(-2.0), const(1.0), edges)
    state = np.exp(-4.0 * x)  # exp(2 f x / g²)
    np.testing.assert_allclose(mat @ state, 0, atol=1e-12)


def test_solve_fokker_planck_ou_accuracy_mass_and_sign():
    edges = np.linspace(-6, 6, 301)
    p0 = gaussian_cells(edges, 2.0, 0.5)
    sol = sde.solve_fokker_planck(
        ou_drift(1.0), const(1.0), p0, edges, 0.025, 40, autonomous=True, save_every=20,
        progress=False,
    )
    mean, var = sde.ou_mean_var(1.0, 1.0, 1.0, m0=2.0, s0=0.5)
    exact = gaussian_cells(edges, mean, math.sqrt(var))
    assert sol.p.shape == (3, 300)
    np.testing.assert_allclose(sol.t, [0.0, 0.5, 1.0])
    assert np.sum(np.abs(sol.p[-1] - exact) * np.diff(edges)) < 1e-3
    np.testing.assert_allclose(sol.mass, 1.0, atol=1e-12)
    assert sol.p.min() >= 0
    assert sol.cdf()(edges[-1]) == pytest.approx(sol.mass[-1])


def test_solve_fokker_planck_time_orders():
    edges = np.linspace(-6, 6, 241)
    p0 = gaussian_cells(edges, 2.0, 0.5)
    fine = sde.solve_fokker_planck(
        ou_drift(1.0), const(1.0), p0, edges, 1 / 640, 640, autonomous=True, progress=False
    ).p[-1]
    orders = {}
    for method in ("euler", "mprk22"):
        err = [
            np.abs(
                sde.solve_fokker_planck(
                    ou_drift(1.0), const(1.0), p0, edges, 1 / n, n, method=method,
                    autonomous=True, progress=False,
                ).p[-1]
                - fine
            ).sum()
            for n in (20, 40)
        ]
        orders[method] = math.log2(err[0] / err[1])
    assert 0.8 < orders["euler"] < 1.2
    assert 1.7 < orders["mprk22"] < 2.3


def test_solve_fokker_planck_time_dependent_vp_sde():
    # dx = -β(t)/2 x dt + √β(t) dw, β(t) = 1 + t: x_t ~ N(m0 e^{-B/2}, 1 - (1 - s0²) e^{-B})
    beta = lambda t: 1.0 + t  # noqa: E731
    edges = np.linspace(-6, 6, 301)
    p0 = gaussian_cells(edges, 2.0, 0.3)
    sol = sde.solve_fokker_planck(
        lambda x, t: -beta(t) * x / 2, lambda x, t: math.sqrt(beta(t)) + 0 * x, p0, edges,
        0.02, 50, progress=False,
    )
    big_b = 1.0 + 0.5
    exact = gaussian_cells(
        edges, 2.0 * math.exp(-big_b / 2), math.sqrt(1 - (1 - 0.09) * math.exp(-big_b))
    )
    assert np.sum(np.abs(sol.p[-1] - exact) * np.diff(edges)) < 2e-3
    assert abs(sol.mass[-1] - 1) < 1e-12


def test_solve_fokker_planck_reaches_the_stationary_density():
    potential = lambda x: x**4 / 4 - x**2 / 2  # noqa: E731
    edges = np.linspace(-3, 3, 241)
    sol = sde.solve_fokker_planck(
        lambda x, t: x - x**3, const(1.0), lambda x: scipy.stats.norm.pdf(x, 1, 0.3), edges,
        0.1, 200, autonomous=True, progress=False,
    )
    p = sde.stationary_density(potential, 1.0)
    assert np.sum(np.abs(sol.p[-1] - p(sol.x)) * np.diff(edges)) < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, "`dt` must be a positive"),
        ({"steps": -1}, "`steps` must be a positive integer"),
        ({"g": const(0.0)}, "`g` must return positive"),
        ({"g": const(-1.0)}, "`g` must return positive"),
        ({"f": lambda x, t: np.where(x > 0, np.inf, 0.0)}, "`f` must return finite"),
        ({"edges": np.linspace(-1, 1, 41)}, "`edges` must cover it"),
        ({"edges": np.linspace(1, -1, 41)}, "`edges` must be a strictly increasing"),
        ({"p0": np.ones(7)}, "`p0` must give 40 cell values"),
        ({"p0": lambda x: -scipy.stats.norm.pdf(x)}, "`p0` must be finite and non-negative"),
        ({"method": "rk4"}, "`method` must be 'mprk22' or 'euler'"),
        ({"save_every": 3}, "`save_every` must divide"),
    ],
)
def test_solve_fokker_planck_bad_input(kwargs, match):
    args = {
        "f": const(0.0), "g": const(1.0), "p0": scipy.stats.norm.pdf,
        "edges": np.linspace(-8, 8, 41), "dt": 0.1, "steps": 10, "progress": False,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sde.solve_fokker_planck(
            args.pop("f"), args.pop("g"), args.pop("p0"), args.pop("edges"), args.pop("dt"),
            args.pop("steps"), **args,
        )


def test_fokker_planck_matrix_bad_input():
    with pytest.raises(ValueError, match="`g` must return positive"):
        sde.fokker_planck_matrix(const(0.0), const(-2.0), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="`f` must be a callable"):
        sde.fokker_planck_matrix(1.0, const(1.0), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="`edges` must be a strictly increasing"):
        sde.fokker_planck_matrix(const(0.0), const(1.0), [0.0, 1.0])
