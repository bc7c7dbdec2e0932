"""Tests of kexue_nb.diffusion.schedule: closed forms, identities, and diffusers as a peer."""

import math

import pytest
import torch

from kexue_nb.diffusion.schedule import DDPMPaperSchedule, Schedule, per_sample

diffusers = pytest.importorskip("diffusers")


def _peer_ddpm(schedule: Schedule, variance_type: str):
    """diffusers' DDPMScheduler on the same betas, its tables promoted to float64 so that the
    comparison measures formulas rather than float32 round-off."""
    betas = schedule.ddpm_paper().betas
    peer = diffusers.DDPMScheduler(num_train_timesteps=schedule.T, trained_betas=betas.numpy(),
                                   variance_type=variance_type, clip_sample=False)
    peer.betas = betas.clone()
    peer.alphas = 1.0 - peer.betas
    peer.alphas_cumprod = torch.cumprod(peer.alphas, 0)
    peer.one = torch.tensor(1.0, dtype=torch.float64)
    return peer


def test_tables_basic_identities():
    s = Schedule.linear(100)
    assert s.T == 100
    for name in ("alpha", "beta", "alpha_bar", "beta_bar"):
        v = getattr(s, name)
        assert v.dtype == torch.float64 and v.shape == (101,) and v.device.type == "cpu"
    assert s.alpha[0] == 1 and s.alpha_bar[0] == 1 and s.beta[0] == 0 and s.beta_bar[0] == 0
    torch.testing.assert_close(s.alpha**2 + s.beta**2, torch.ones(101, dtype=torch.float64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(s.alpha_bar**2 + s.beta_bar**2, torch.ones(101, dtype=torch.float64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(s.alpha_bar, torch.cumprod(s.alpha, 0), rtol=1e-13, atol=0)
    # Su's induction step (9119): β̄_t² = α_t² β̄_{t−1}² + β_t²
    torch.testing.assert_close(s.beta_bar[1:] ** 2, s.alpha[1:] ** 2 * s.beta_bar[:-1] ** 2
                               + s.beta[1:] ** 2, rtol=1e-12, atol=0)


def test_su_schedule_known_values():
    s = Schedule.su(1000)
    t = torch.arange(1, 1001, dtype=torch.float64)
    torch.testing.assert_close(s.alpha[1:], torch.sqrt(1 - 0.02 * t / 1000), rtol=0, atol=1e-15)
    log_abar = 0.5 * torch.log1p(-0.02 * t / 1000).sum().item()
    assert s.alpha_bar[-1].item() == pytest.approx(math.exp(log_abar), rel=1e-12)
    # 9119: log ᾱ_T ≈ −5.04, ᾱ_T ≈ 0.0065, and the bound log ᾱ_T < −0.005 (T + 1)
    assert math.log(s.alpha_bar[-1].item()) == pytest.approx(-5.035, abs=0.005)
    assert s.alpha_bar[-1].item() == pytest.approx(0.0065, abs=0.0001)
    assert math.log(s.alpha_bar[-1].item()) < -0.005 * 1001


def test_from_betas_linear_and_ddpm_paper_roundtrip():
    betas = torch.linspace(1e-4, 0.02, 50, dtype=torch.float64)
    s = Schedule.from_betas(betas)
    torch.testing.assert_close(s.beta[1:] ** 2, betas, rtol=1e-14, atol=0)
    lin = Schedule.linear(50)
    torch.testing.assert_close(lin.alpha_bar, s.alpha_bar, rtol=0, atol=0)
    paper = s.ddpm_paper()
    assert isinstance(paper, DDPMPaperSchedule)
    torch.testing.assert_close(paper.betas, betas, rtol=1e-14, atol=0)
    torch.testing.assert_close(paper.alphas, 1 - betas, rtol=1e-15, atol=0)
    torch.testing.assert_close(paper.alphas_cumprod, torch.cumprod(1 - betas, 0),
                               rtol=1e-13, atol=0)


def test_cosine_matches_improved_ddpm_formula_and_peer():
    T, s_ = 200, 0.008
    s = Schedule.cosine(T, s=s_)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2
    # unclipped steps reproduce ᾱ_t = f(t)/f(0) (the last beta is clipped at 0.999)
    torch.testing.assert_close(s.alpha_bar[:-1] ** 2, (f / f[0])[:-1], rtol=1e-12, atol=1e-15)
    assert s.beta[-1].item() ** 2 == pytest.approx(0.999, abs=1e-15)
    peer = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(s.ddpm_paper().betas.float(), peer.betas, rtol=1e-5, atol=1e-7)


def test_sigma_choices():
    s = Schedule.linear(30)
    t = torch.arange(1, 31)
    torch.testing.assert_close(s.sigma(t, "beta"), s.beta[1:])
    post = s.sigma(t, "posterior")
    torch.testing.assert_close(post, s.beta_bar[:-1] * s.beta[1:] / s.beta_bar[1:])
    assert s.sigma(1, "posterior").item() == 0.0
    assert bool(torch.all(post <= s.beta[1:]))


def test_q_sample_and_gather_broadcast():
    s = Schedule.linear(10)
    x0 = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 5, 10])
    xt = s.q_sample(x0, t, noise)
    for i, ti in enumerate(t.tolist()):
        expected = s.alpha_bar[ti].float() * x0[i] + s.beta_bar[ti].float() * noise[i]
        torch.testing.assert_close(xt[i], expected)
    assert torch.equal(xt[0], x0[0])  # t = 0 is clean data
    g = s.gather(s.beta_bar, t, x0)
    assert g.shape == (3, 1, 1) and g.dtype == torch.float32
    assert s.gather(s.alpha, 4, x0).shape == ()
    # forward recursion equals the closed form in distribution: a step-by-step chain with its
    # own noises has variance β̄_t² (checked exactly on the coefficients)
    var = torch.zeros((), dtype=torch.float64)
    for k in range(1, 11):
        var = s.alpha[k] ** 2 * var + s.beta[k] ** 2
    assert var.item() == pytest.approx(s.beta_bar[10].item() ** 2, rel=1e-13)


def test_posterior_against_completing_the_square_and_peer():
    s = Schedule.linear(1000)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    xt = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    mean, std = s.posterior(xt, x0, t)
    # the DDPM paper's eq. (7) coefficients, written in its notation
    paper = s.ddpm_paper()
    ac = torch.cat([torch.ones(1, dtype=torch.float64), paper.alphas_cumprod])
    b = torch.cat([torch.zeros(1, dtype=torch.float64), paper.betas])
    c0 = ac[t - 1].sqrt() * b[t] / (1 - ac[t])
    ct = (1 - b[t]).sqrt() * (1 - ac[t - 1]) / (1 - ac[t])
    torch.testing.assert_close(mean, c0[:, None] * x0 + ct[:, None] * xt, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(std.squeeze(1) ** 2, (1 - ac[t - 1]) / (1 - ac[t]) * b[t],
                               rtol=1e-10, atol=1e-15)
    # peer: diffusers' posterior variance ("fixed_small") and coefficients via a step with ε
    peer = _peer_ddpm(s, "fixed_small")
    for ti in (2, 10, 500, 1000):
        assert s.sigma(ti, "posterior").item() ** 2 == pytest.approx(
            peer._get_variance(ti - 1).item(), rel=1e-10)
    assert peer._get_variance(0).item() == pytest.approx(1e-20)  # diffusers clamps σ_1² = 0
    peer_large = _peer_ddpm(s, "fixed_large")
    for ti in (1, 2, 500, 1000):
        assert s.sigma(ti, "beta").item() ** 2 == pytest.approx(
            peer_large._get_variance(ti - 1).item(), rel=1e-12)


def test_predict_x0_inverts_q_sample():
    s = Schedule.su(100)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    t = torch.tensor([1, 20, 50, 99, 100])
    torch.testing.assert_close(s.predict_x0(s.q_sample(x0, t, eps), t, eps), x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Schedule.su(0), "`T` must be a positive integer"),
        (lambda: Schedule.linear(-3), "`T` must be a positive integer"),
        (lambda: Schedule.cosine(2.5), "`T` must be a positive integer"),
        (lambda: Schedule.linear(10, beta_end=1.5), "`beta_end` must lie in"),
        (lambda: Schedule.cosine(10, s=0), "`s` must be positive"),
        (lambda: Schedule.from_betas([0.1, 1.0]),
         r"`betas` must lie in the open interval \(0, 1\)"),
        (lambda: Schedule.from_betas([0.0, 0.1]), r"`betas` must lie in the open interval"),
        (lambda: Schedule.from_betas([]), "`betas` must be a non-empty 1-D"),
    ],
)
def test_constructor_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_method_bad_input():
    s = Schedule.linear(10)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"`t` must lie in 0\.\.10"):
        s.q_sample(x, 11, x)
    with pytest.raises(ValueError, match=r"`t` must lie in 0\.\.10"):
        s.q_sample(x, torch.tensor([0, 1, 2, -1]), x)
    with pytest.raises(ValueError, match="`t` must have one entry per sample"):
        s.q_sample(x, torch.tensor([1, 2]), x)
    with pytest.raises(ValueError, match="`t` must be an integer tensor"):
        s.q_sample(x, torch.tensor([1.0, 2.0, 3.0, 4.0]), x)
    with pytest.raises(ValueError, match="`noise` must have x0's shape"):
        s.q_sample(x, 1, torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"`t` must lie in 1\.\.10"):
        s.posterior(x, x, 0)
    with pytest.raises(ValueError, match="`x0` must have x_t's shape"):
        s.posterior(x, torch.zeros(2, 2), 1)
    with pytest.raises(ValueError, match="`variance` must be 'beta', 'posterior' or 'zero'"):
        s.sigma(1, "large")
    with pytest.raises(ValueError, match="`values` must be a 1-D tensor of length T"):
        s.gather(torch.zeros(5), 1, x)
    with pytest.raises(ValueError, match="`eps` must have x_t's shape"):
        s.predict_x0(x, 1, torch.zeros(1))


def test_per_sample_broadcasts_scalars_and_one_value_per_sample():
    like = torch.zeros(3, 2, 4, dtype=torch.float32)
    out = per_sample(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), like, "sigma")
    assert out.shape == (3, 1, 1) and out.dtype == torch.float32
    torch.testing.assert_close((out * torch.ones_like(like))[:, 1, 3],
                               torch.tensor([1.0, 2.0, 3.0]))
    scalar = per_sample(0.5, like, "sigma")
    assert scalar.ndim == 0 and scalar.item() == 0.5
    with pytest.raises(ValueError,
                       match=r"`sigma` must be a scalar or have shape \(3,\), got \(2,\)"):
        per_sample(torch.ones(2), like, "sigma")


def test_no_silent_wrong_answers_issue_15():
    """Integer tensors used to give zeros (q_sample, posterior), inf (predict_x0); complex input
    was cut to its real part; cosine(s=inf) blamed `betas`; huge T ran out of memory."""
    s = Schedule.su(10)
    xi = torch.ones(3, 2, dtype=torch.long)
    for call, name in ((lambda: s.q_sample(xi, 5, xi), "x0"),
                       (lambda: s.predict_x0(xi, 5, xi), "x_t"),
                       (lambda: s.posterior(xi, xi, 5), "x_t"),
                       (lambda: s.q_sample(xi.to(torch.complex64), 5, xi), "x0")):
        with pytest.raises(TypeError, match=f"`{name}` must have a floating dtype"):
            call()
    with pytest.raises(TypeError, match="`betas` must be a real 1-D sequence"):
        Schedule.from_betas([0.1j, 0.2])
    with pytest.raises(ValueError, match="`s` must be a finite number"):
        Schedule.cosine(10, s=math.inf)
    with pytest.raises(ValueError, match="`s` = 1e\\+300 is too large"):
        Schedule.cosine(10, s=1e300)
    with pytest.raises(ValueError, match="`T` must be a positive integer <= 1000000"):
        Schedule.su(10**9)
    with pytest.raises(ValueError, match=r"`t` must lie in 0\.\.10"):
        s.q_sample(torch.ones(1), 10**30, torch.ones(1))
    # float32 input keeps its dtype; float64 tables are cast as before
    assert s.q_sample(torch.ones(2), 3, torch.ones(2)).dtype == torch.float32
