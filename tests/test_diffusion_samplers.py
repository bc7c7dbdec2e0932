"""Tests of kexue_nb.diffusion.samplers: single steps against diffusers, and whole samplers with
the exact ε of Gaussian data (whose reverse steps are affine, so the law of the output is known)."""

import pytest
import torch

from kexue_nb.diffusion.samplers import (
    Samples,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
)
from kexue_nb.diffusion.schedule import Schedule

diffusers = pytest.importorskip("diffusers")
F64 = torch.float64


class GaussianEps(torch.nn.Module):
    """The exact ε-prediction for data N(m, s² I): ε*(x_t) = (x_t − ᾱ E[x_0|x_t])/β̄ with
    E[x_0|x_t] = m + ᾱ s²/(ᾱ² s² + β̄²) (x_t − ᾱ m)."""

    num_classes = 0

    def __init__(self, schedule: Schedule, m: float, s: float) -> None:
        super().__init__()
        self.schedule, self.m, self.s = schedule, m, s
        self.calls = 0

    def forward(self, x, t, y=None):
        self.calls += 1
        ab = self.schedule.gather(self.schedule.alpha_bar, t, x)
        bb = self.schedule.gather(self.schedule.beta_bar, t, x)
        x0 = self.m + ab * self.s**2 / (ab**2 * self.s**2 + bb**2) * (x - ab * self.m)
        return (x - ab * x0) / bb


def _random(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _promote(peer, betas):
    peer.betas = betas.clone()
    peer.alphas = 1.0 - peer.betas
    peer.alphas_cumprod = torch.cumprod(peer.alphas, 0)
    peer.one = torch.tensor(1.0, dtype=F64)
    peer.final_alpha_cumprod = torch.tensor(1.0, dtype=F64)
    return peer


# ------------------------------------------------------------------------------------------
# peers
@pytest.mark.parametrize(("variance", "variance_type"), [("posterior", "fixed_small"),
                                                         ("beta", "fixed_large")])
def test_ddpm_step_matches_diffusers(variance, variance_type):
    s = Schedule.linear(1000)
    betas = s.ddpm_paper().betas
    peer = _promote(diffusers.DDPMScheduler(num_train_timesteps=1000, trained_betas=betas.numpy(),
                                            variance_type=variance_type, clip_sample=False), betas)
    x, eps = _random((4, 3), 0), _random((4, 3), 1)
    for t in (2, 3, 100, 700, 1000):
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=F64)
        ours = ddpm_step(eps, x, t, s, variance=variance, noise=z)
        theirs = peer.step(eps, t - 1, x, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)
    # t = 1: diffusers adds no noise; our step without noise is the mean
    torch.testing.assert_close(ddpm_step(eps, x, 1, s, variance=variance, noise=None),
                               peer.step(eps, 0, x).prev_sample, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("eta", [0.0, 1.0, 0.5])
def test_ddim_step_matches_diffusers(eta):
    T, S = 1000, 50
    s = Schedule.linear(T)
    betas = s.ddpm_paper().betas
    peer = diffusers.DDIMScheduler(num_train_timesteps=T, trained_betas=betas.numpy(),
                                   clip_sample=False, set_alpha_to_one=True,
                                   timestep_spacing="trailing")
    peer.set_timesteps(S)
    _promote(peer, betas)
    ours_ts = ddim_timesteps(T, S)
    assert ours_ts == (peer.timesteps + 1).tolist()  # same visited timesteps
    x, eps = _random((5, 2), 2), _random((5, 2), 3)
    z = _random((5, 2), 4)
    for i in (0, 1, 25, S - 1):
        k = int(peer.timesteps[i])
        t, t_prev = ours_ts[i], (ours_ts[i + 1] if i + 1 < S else 0)
        theirs = peer.step(eps, k, x, eta=eta, variance_noise=z).prev_sample
        ours = ddim_step(eps, x, t, t_prev, s, eta=eta, noise=z)
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_ddim_eta_one_is_ddpm_posterior_step():
    s = Schedule.su(200)
    x, eps, z = _random((3, 2), 5), _random((3, 2), 6), _random((3, 2), 7)
    for t in (2, 50, 200):
        assert ddim_sigma(s, t, t - 1, 1.0) == pytest.approx(s.sigma(t, "posterior").item(),
                                                             rel=1e-12)
        torch.testing.assert_close(ddim_step(eps, x, t, t - 1, s, eta=1.0, noise=z),
                                   ddpm_step(eps, x, t, s, variance="posterior", noise=z),
                                   rtol=1e-12, atol=1e-12)


def test_ddim_timesteps_spacing():
    assert ddim_timesteps(10, 10) == list(range(10, 0, -1))
    assert ddim_timesteps(1000, 4) == [1000, 750, 500, 250]
    assert ddim_timesteps(10, 3) == [10, 7, 3]
    assert ddim_timesteps(7, 1) == [7]


# ------------------------------------------------------------------------------------------
# whole samplers with the exact ε of Gaussian data
def test_ddpm_beta_variance_is_exact_for_standard_normal_data():
    """Data N(0, I): the reverse step N(α_t x_t, β_t²) is exact (9164), so with the last
    noise kept the sampler returns N(0, I) exactly, for any T."""
    s = Schedule.su(25)
    n = 20_000
    out = ddpm_sample(GaussianEps(s, 0.0, 1.0), s, (n, 2), variance="beta", final_noise=True,
                      dtype=F64, generator=torch.Generator().manual_seed(0), progress=False)
    x = out.x
    se_mean, se_var = (1 / n) ** 0.5, (2 / n) ** 0.5
    assert x.mean(0).abs().max().item() < 5 * se_mean
    assert (x.var(0) - 1).abs().max().item() < 5 * se_var


def test_ddpm_zero_variance_is_the_mean_chain():
    """σ_t = 0: each step is the mean alone, so standard normal data collapse to ᾱ_T x_T (9119);
    no noise is drawn after x_T, and classifier guidance adds no shift (σ_t² = 0)."""
    s = Schedule.su(40)
    model = GaussianEps(s, 0.0, 1.0)
    x_T = _random((500, 2), 3)
    out = ddpm_sample(model, s, (500, 2), variance="zero", x_T=x_T, dtype=F64, progress=False)
    torch.testing.assert_close(out.x, s.alpha_bar[40] * x_T, rtol=1e-12, atol=0)
    x = x_T
    for t in range(40, 0, -1):
        x = ddpm_step(model(x, torch.full((500,), t)), x, t, s, variance="beta", noise=None)
    torch.testing.assert_close(out.x, x, rtol=0, atol=0)
    g = torch.Generator().manual_seed(4)
    first = ddpm_sample(model, s, (8, 2), variance="zero", generator=g, dtype=F64,
                        progress=False).x
    after = torch.randn(1, generator=g, dtype=F64)
    g.manual_seed(4)
    torch.randn((8, 2), generator=g, dtype=F64)           # x_T is the only draw
    assert torch.equal(after, torch.randn(1, generator=g, dtype=F64))
    assert first.shape == (8, 2)
    assert torch.equal(s.sigma(torch.tensor([1, 7, 40]), "zero"), torch.zeros(3, dtype=F64))
    z = _random((500, 2), 5)
    torch.testing.assert_close(ddpm_step(model(x_T, torch.full((500,), 9)), x_T, 9, s,
                                         variance="zero", noise=z),
                               ddpm_step(model(x_T, torch.full((500,), 9)), x_T, 9, s,
                                         variance="beta", noise=None), rtol=0, atol=0)


def _affine_law(step, model, s, timesteps, m0, v0, *sigmas):
    """Propagate the mean and variance of N(m0, v0) through the affine steps
    x ↦ A x + B + σ z (A, B read off ``step`` at x = 0 and 1); one variance per σ list."""
    m, vs = m0, [v0] * len(sigmas)
    one = torch.ones(1, 1, dtype=F64)
    for i, t in enumerate(timesteps):
        tb = torch.full((1,), t)
        b = step(model(0 * one, tb), 0 * one, t).item()
        a = step(model(one, tb), one, t).item() - b
        m = a * m + b
        vs = [a * a * v + sig[i] ** 2 for v, sig in zip(vs, sigmas, strict=True)]
    return (m, *vs)


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ddpm_sample_law_matches_affine_propagation(variance):
    s = Schedule.linear(60, beta_end=0.15)
    mu, sd = 1.5, 0.5
    model = GaussianEps(s, mu, sd)
    n = 20_000
    out = ddpm_sample(model, s, (n, 1), variance=variance, dtype=F64,
                      generator=torch.Generator().manual_seed(1), progress=False)
    assert model.calls == 60
    ts = list(range(60, 0, -1))
    sig = [s.sigma(t, variance).item() if t > 1 else 0.0 for t in ts]
    m, v = _affine_law(lambda e, x, t: ddpm_step(e, x, t, s, variance=variance, noise=None),
                       model, s, ts, 0.0, 1.0, sig)
    assert out.x.mean().item() == pytest.approx(m, abs=5 * (v / n) ** 0.5)
    assert out.x.var().item() == pytest.approx(v, abs=5 * v * (2 / n) ** 0.5)
    assert out.timesteps == ts


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_law_matches_affine_propagation(eta):
    s = Schedule.linear(1000)
    mu, sd = -0.7, 0.3
    model = GaussianEps(s, mu, sd)
    n, steps = 20_000, 20
    out = ddim_sample(model, s, (n, 1), steps=steps, eta=eta, dtype=F64,
                      generator=torch.Generator().manual_seed(2), progress=False)
    ts = ddim_timesteps(1000, steps)
    prev = ts[1:] + [0]
    sig = [ddim_sigma(s, t, tp, eta) for t, tp in zip(ts, prev, strict=True)]
    nxt = dict(zip(ts, prev, strict=True))
    m, v = _affine_law(lambda e, x, t: ddim_step(e, x, t, nxt[t], s, eta=eta, noise=None),
                       model, s, ts, 0.0, 1.0, sig)
    assert out.x.mean().item() == pytest.approx(m, abs=5 * (v / n) ** 0.5 + 1e-12)
    assert out.x.var().item() == pytest.approx(v, abs=5 * v * (2 / n) ** 0.5)
    assert out.timesteps == ts


def test_exact_reverse_chains_recover_the_data_law_at_T_1000():
    """With T = 1000 steps the exact-ε chains end near the data law N(1.5, 0.5²): the affine
    propagation leaves only discretisation error (few-step DDIM visibly shrinks the spread)."""
    s = Schedule.linear(1000)
    mu, sd = 1.5, 0.5
    model = GaussianEps(s, mu, sd)
    ts = list(range(1000, 0, -1))
    # the mean map of the DDPM step does not depend on σ_t: propagate both variances at once
    sig_b = [s.sigma(t, "beta").item() if t > 1 else 0.0 for t in ts]
    sig_p = [s.sigma(t, "posterior").item() for t in ts]
    m, v_b, v_p = _affine_law(lambda e, x, t: ddpm_step(e, x, t, s, variance="beta", noise=None),
                              model, s, ts, 0.0, 1.0, sig_b, sig_p)
    assert m == pytest.approx(mu, abs=1e-4)
    assert v_b**0.5 == pytest.approx(sd, abs=0.002)  # σ_t = β_t
    assert v_p**0.5 == pytest.approx(sd, abs=0.006)  # posterior σ_t
    spreads = {}
    for steps in (20, 1000):
        tsd = ddim_timesteps(1000, steps)
        nxt = dict(zip(tsd, tsd[1:] + [0], strict=True))
        m, v = _affine_law(lambda e, x, t, nxt=nxt: ddim_step(e, x, t, nxt[t], s, eta=0.0,
                                                              noise=None),
                           model, s, tsd, 0.0, 1.0, [0.0] * steps)
        assert m == pytest.approx(mu, abs=0.01)
        spreads[steps] = v**0.5
    assert spreads[1000] == pytest.approx(sd, abs=0.01)
    assert spreads[20] < sd - 0.05


def test_ddim_eta_zero_is_deterministic_map_of_x_T():
    s = Schedule.su(100)
    model = GaussianEps(s, 0.5, 0.2)
    x_T = _random((7, 2), 9)
    a = ddim_sample(model, s, (7, 2), steps=10, x_T=x_T, dtype=F64, progress=False,
                    generator=torch.Generator().manual_seed(0))
    b = ddim_sample(model, s, (7, 2), steps=10, x_T=x_T, dtype=F64, progress=False,
                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.x, b.x)


def test_seeding_recording_and_x0_hat():
    s = Schedule.su(30)
    model = GaussianEps(s, 0.0, 0.5)
    kw = dict(variance="posterior", dtype=F64, progress=False, record=True)
    a = ddpm_sample(model, s, (6, 2), generator=torch.Generator().manual_seed(3), **kw)
    b = ddpm_sample(model, s, (6, 2), generator=torch.Generator().manual_seed(3), **kw)
    c = ddpm_sample(model, s, (6, 2), generator=torch.Generator().manual_seed(4), **kw)
    assert isinstance(a, Samples)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert len(a.trajectory) == 31 and len(a.x0_hat) == 30
    assert torch.equal(a.trajectory[-1], a.x)
    # x̂_0 at step t is (x_t − β̄_t ε)/ᾱ_t with the model's ε
    t0 = torch.full((6,), 30)
    eps = model(a.trajectory[0], t0)
    torch.testing.assert_close(a.x0_hat[0], s.predict_x0(a.trajectory[0], 30, eps))
    d = ddim_sample(model, s, (6, 2), steps=5, dtype=F64, progress=False)
    assert d.trajectory is None and d.x0_hat is None
    assert ddpm_sample(model, s, (6, 2), dtype=F64, progress=False).x.dtype == F64


def test_bad_input():
    s = Schedule.su(20)
    model = GaussianEps(s, 0.0, 1.0)
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="`variance` must be 'beta', 'posterior' or 'zero'"):
        ddpm_sample(model, s, (3, 2), variance="large", progress=False)
    with pytest.raises(ValueError, match="`variance` must be 'beta', 'posterior' or 'zero'"):
        ddpm_step(x, x, 2, s, variance="small", noise=None)
    with pytest.raises(ValueError, match=r"`steps` must be an integer in 1\.\.T = 20"):
        ddim_sample(model, s, (3, 2), steps=21, progress=False)
    with pytest.raises(ValueError, match=r"`steps` must be an integer in 1\.\.T"):
        ddim_sample(model, s, (3, 2), steps=0, progress=False)
    with pytest.raises(ValueError, match="`eta` must be a finite number >= 0"):
        ddim_sample(model, s, (3, 2), steps=5, eta=-0.1, progress=False)
    with pytest.raises(ValueError, match="`eta` must be a finite number >= 0"):
        ddim_step(x, x, 5, 4, s, eta=-1.0, noise=None)
    with pytest.raises(ValueError, match=r"`t_prev` must lie in 0\.\.4"):
        ddim_step(x, x, 5, 5, s, eta=0.0, noise=None)
    with pytest.raises(ValueError, match=r"`t` must lie in 1\.\.20"):
        ddim_step(x, x, 21, 5, s, eta=0.0, noise=None)
    with pytest.raises(ValueError, match=r"`t_prev` must lie in 0\.\.2"):
        ddim_sigma(s, 3, -1, 1.0)
    with pytest.raises(ValueError, match="`eta` must be a finite number >= 0"):
        ddim_sigma(s, 3, 2, float("nan"))
    with pytest.raises(ValueError, match=r"`t` must lie in 1\.\.20"):
        ddpm_step(x, x, 0, s, variance="beta", noise=None)
    with pytest.raises(ValueError, match="`eps` must have x_t's shape"):
        ddpm_step(x[:1], x, 3, s, variance="beta", noise=None)
    with pytest.raises(ValueError, match="`noise` must have x_t's shape"):
        ddpm_step(x, x, 3, s, variance="beta", noise=x[:, :1])
    with pytest.raises(ValueError, match="`noise` must have x_t's shape"):
        ddim_step(x, x, 5, 4, s, eta=1.0, noise=x[:1])
    with pytest.raises(ValueError, match="`shape` must be a non-empty tuple"):
        ddpm_sample(model, s, (3, 0), progress=False)
    with pytest.raises(ValueError, match=r"`y` must be a long tensor of shape \(3,\)"):
        ddpm_sample(model, s, (3, 2), y=torch.zeros(2, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match="`x_T` must have shape"):
        ddim_sample(model, s, (3, 2), steps=2, x_T=torch.zeros(2, 2), progress=False)
    with pytest.raises(ValueError, match=r"`steps` must be an integer in 1\.\.T = 10"):
        ddim_timesteps(10, 11)
    with pytest.raises(ValueError, match="`T` must be a positive integer"):
        ddim_timesteps(0, 1)


def test_no_silent_wrong_answers_issue_15():
    """η > 1 used to clip √(β̄_s² − σ²) at 0 silently; integer tensors gave NaN; a huge shape
    ran out of memory; a long dtype gave a raw RuntimeError."""
    import math

    s = Schedule.su(20)
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="`eta` = 5.0 makes σ"):
        ddim_step(x, x, 10, 1, s, eta=5.0, noise=None)
    with pytest.raises(ValueError, match="`eta` = 5.0 makes σ"):
        ddim_sample(lambda x, t, y: x, s, (2, 2), steps=4, eta=5.0, progress=False)
    with pytest.raises(TypeError, match="`eps` must have a floating dtype"):
        ddpm_step(x.long(), x.long(), 5, s, variance="beta", noise=None)
    with pytest.raises(ValueError, match="`shape` .* more than the limit 100000000"):
        ddpm_sample(lambda x, t, y: x, s, (10**5, 10**5), progress=False)
    with pytest.raises(TypeError, match="`dtype` must be a floating torch dtype"):
        ddpm_sample(lambda x, t, y: x, s, (2, 2), dtype=torch.long, progress=False)
    with pytest.raises(ValueError, match="`x_T` must be finite"):
        ddim_sample(lambda x, t, y: x, s, (1, 2), steps=2, x_T=torch.tensor([[math.nan, 0.0]]),
                    progress=False)
    with pytest.raises(TypeError, match="`y` must be an integer"):
        ddpm_sample(lambda x, t, y: x, s, (2, 2), y=torch.tensor([0.5, 1.0]), progress=False)
    with pytest.raises(TypeError, match="`schedule` must be a Schedule"):
        ddim_sigma("schedule", 5, 4, 0.0)
    with pytest.raises(ValueError, match="`T` must be a positive integer <= 1000000"):
        ddim_timesteps(10**9, 2)


def test_gaussian_chain_variance_closed_cases_and_monte_carlo():
    from kexue_nb.diffusion import LabelledMixture, gaussian_chain_variance

    s = Schedule.su(1000)
    # σ_t = β_t keeps N(0, 1) exactly (with the last noise); the posterior σ returns a point to 0
    exact = gaussian_chain_variance(s, 1.0, "beta", final_noise=True)
    assert exact == pytest.approx(1.0, abs=1e-12)
    assert gaussian_chain_variance(s, 0.0, "posterior") == pytest.approx(0.0, abs=1e-12)
    assert gaussian_chain_variance(s, 1.0, "posterior") == pytest.approx(0.99116, abs=1e-5)
    # against ddpm_sample with the exact model of N(0, 0.3²) on a short schedule
    short = Schedule.from_betas(torch.linspace(0.01, 0.3, 20, dtype=torch.float64))
    model = LabelledMixture(means=[[0.0]], stds=0.3).denoiser(short)
    n = 40_000
    x = ddpm_sample(model, short, (n, 1), variance="beta", dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0), progress=False).x
    v = gaussian_chain_variance(short, 0.09, "beta")
    assert x.var().item() == pytest.approx(v, abs=4 * v * (2 / n) ** 0.5)
    marginal = short.alpha_bar[20].item() ** 2 * 0.09 + short.beta_bar[20].item() ** 2
    m = (1 - short.beta[20].item() ** 2 / marginal) / short.alpha[20].item()
    assert gaussian_chain_variance(short, 0.09, "zero", t_stop=19) == pytest.approx(m * m)
    # started from the exact law at t_start, one step without noise scales its variance by m²
    assert gaussian_chain_variance(short, 0.09, "zero", t_start=20, t_stop=19) == pytest.approx(
        m * m * marginal)
    # σ_t = β_t keeps the exact law of N(0, 1) data from any start
    assert gaussian_chain_variance(s, 1.0, "beta", t_start=50, t_stop=10) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"data_var": -1.0}, "data_var"), ({"data_var": float("nan")}, "data_var"),
    ({"variance": "sigma"}, "variance"), ({"t_stop": 1000}, "t_stop"), ({"t_stop": 1.5}, "t_stop"),
    ({"final_noise": 1}, "final_noise"), ({"t_start": 0}, "t_start"),
    ({"t_start": 1001}, "t_start"), ({"t_start": 5, "t_stop": 5}, "t_start"),
    ({"t_start": True}, "t_start"),
])
def test_gaussian_chain_variance_refuses_bad_input(kwargs, name):
    from kexue_nb.diffusion import gaussian_chain_variance

    args = {"data_var": 1.0, **kwargs}
    data_var = args.pop("data_var")
    with pytest.raises((TypeError, ValueError), match=name):
        gaussian_chain_variance(Schedule.su(1000), data_var, **args)
