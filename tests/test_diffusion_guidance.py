"""Tests of kexue_nb.diffusion.guidance with an exact labelled Gaussian mixture (float64)."""

import pytest
import torch

from kexue_nb.diffusion.data import LabelledMixture
from kexue_nb.diffusion.guidance import ClassifierFreeGuidance, ClassifierGuidance, cfg_combine
from kexue_nb.diffusion.samplers import ddim_sample, ddpm_sample
from kexue_nb.diffusion.schedule import Schedule

F64 = torch.float64


def _mixture():
    # three classes; class 0 has two components, so p_t(y|x) is not a plain softmax of a line
    means = [[-2.0, 0.0], [-1.0, 2.0], [2.0, 0.5], [0.5, -2.0]]
    return LabelledMixture(means, [0.4, 0.3, 0.5, 0.35], weights=[0.2, 0.3, 0.3, 0.2],
                           labels=[0, 0, 1, 2])


def _points(n, seed):
    return 2 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_cfg_combine_formula():
    c, u = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    torch.testing.assert_close(cfg_combine(c, u, 2.0), torch.tensor([2.0, 8.0]))
    torch.testing.assert_close(cfg_combine(c, u, 0.0), c)


def test_grad_log_prob_is_the_score_difference():
    """∇log p_t(y|x) = ∇log p_t(x|y) − ∇log p_t(x) (Bayes), autograd against closed forms."""
    mix, s = _mixture(), Schedule.linear(200)
    guide = ClassifierGuidance(mix.classifier(s), scale=1.0)
    x = _points(12, 0)
    y = torch.tensor([0, 1, 2] * 4)
    for t in (1, 40, 200):
        tb = torch.full((12,), t)
        ab, bb = s.alpha_bar[t].item(), s.beta_bar[t].item()
        expected = mix.score(x, ab, bb, y=y) - mix.score(x, ab, bb)
        torch.testing.assert_close(guide.grad_log_prob(x, tb, y), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("w", [0.0, 0.5, 3.0])
def test_cfg_equals_classifier_guidance_in_eps_space(w):
    """With exact ε_c, ε_u: (1 + w) ε_c − w ε_u = ε_u − (1 + w) β̄_t ∇log p_t(y|x) (9257)."""
    mix, s = _mixture(), Schedule.su(1000)
    model = mix.denoiser(s)
    cfg = ClassifierFreeGuidance(w)
    cg = ClassifierGuidance(mix.classifier(s), scale=1.0 + w)
    x = _points(9, 1)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    for t in (2, 100, 999):
        tb = torch.full((9,), t)
        torch.testing.assert_close(cfg.eps(model, x, tb, y, s), cg.eps(model, x, tb, y, s),
                                   rtol=0, atol=1e-10)


def test_ddpm_hooks():
    mix, s = _mixture(), Schedule.linear(100)
    model = mix.denoiser(s)
    x, y, tb = _points(6, 2), torch.tensor([0, 1, 2, 2, 1, 0]), torch.full((6,), 30)
    sigma = s.sigma(30, "beta")
    cg = ClassifierGuidance(mix.classifier(s), scale=2.5)
    eps, shift = cg.ddpm(model, x, tb, y, s, sigma)
    torch.testing.assert_close(eps, model(x, tb))  # unguided ε ...
    torch.testing.assert_close(shift, sigma**2 * 2.5 * cg.grad_log_prob(x, tb, y))  # ... + shift
    cfg = ClassifierFreeGuidance(1.5)
    eps_f, shift_f = cfg.ddpm(model, x, tb, y, s, sigma)
    assert shift_f == 0.0
    torch.testing.assert_close(eps_f, 2.5 * model(x, tb, y) - 1.5 * model(x, tb))


def test_ddpm_shift_with_per_sample_timesteps():
    """A batch of mixed t: each sample's shift uses its own σ_t, as when stepped alone."""
    mix, s = _mixture(), Schedule.linear(100)
    model, cg = mix.denoiser(s), ClassifierGuidance(mix.classifier(s), scale=2.0)
    x, y = _points(4, 3), torch.tensor([0, 1, 2, 0])
    tb = torch.tensor([1, 10, 50, 100])
    _, shift = cg.ddpm(model, x, tb, y, s, s.sigma(tb, "posterior"))
    for i, t in enumerate(tb.tolist()):
        _, alone = cg.ddpm(model, x[i:i + 1], tb[i:i + 1], y[i:i + 1], s, s.sigma(t, "posterior"))
        torch.testing.assert_close(shift[i:i + 1], alone, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="`sigma` must be a scalar or have shape"):
        cg.ddpm(model, x, tb, y, s, s.sigma(tb[:2], "beta"))


def test_samplers_with_guidance():
    mix, s = _mixture(), Schedule.linear(50, beta_end=0.2)
    model = mix.denoiser(s)
    n = 500
    y = torch.full((n,), 1)
    kw = dict(dtype=F64, progress=False)

    def run(sampler, guidance, yy=y, seed=0, **extra):
        return sampler(model, s, (n, 2), y=yy, guidance=guidance,
                       generator=torch.Generator().manual_seed(seed), **kw, **extra).x

    # γ = 0 is unguided sampling; CFG with w = 0 is conditional sampling
    torch.testing.assert_close(run(ddpm_sample, ClassifierGuidance(mix.classifier(s), 0.0)),
                               run(ddpm_sample, None, yy=None), rtol=0, atol=0)
    torch.testing.assert_close(run(ddim_sample, ClassifierFreeGuidance(0.0), steps=10),
                               run(ddim_sample, None, steps=10), rtol=0, atol=0)
    # whole DDIM trajectories: CFG(w) and classifier guidance (1 + w) coincide
    torch.testing.assert_close(run(ddim_sample, ClassifierFreeGuidance(2.0), steps=10),
                               run(ddim_sample, ClassifierGuidance(mix.classifier(s), 3.0),
                                   steps=10), rtol=0, atol=1e-8)
    # guidance moves the samples into the requested class: P(class 1) = 0.3 without it
    def frac(x):
        return (mix.class_posterior(x).argmax(1) == 1).double().mean().item()

    free = frac(run(ddpm_sample, None, yy=None))
    guided = frac(run(ddpm_sample, ClassifierGuidance(mix.classifier(s), 1.0)))
    assert abs(free - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5
    assert guided > 0.95


def test_bad_input():
    mix, s = _mixture(), Schedule.su(20)
    clf = mix.classifier(s)
    with pytest.raises(ValueError, match="`w` must be a finite number >= 0"):
        ClassifierFreeGuidance(-0.5)
    with pytest.raises(ValueError, match="`scale` must be a finite number >= 0"):
        ClassifierGuidance(clf, -1.0)
    with pytest.raises(ValueError, match="`w` must be a finite number >= 0"):
        cfg_combine(torch.zeros(2), torch.zeros(2), -1.0)
    with pytest.raises(ValueError, match="`eps_uncond` must have eps_cond's shape"):
        cfg_combine(torch.zeros(2), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="`classifier` must be callable"):
        ClassifierGuidance("not a model", 1.0)
    x, tb = _points(4, 3), torch.full((4,), 5)
    with pytest.raises(ValueError, match="`y` must be given"):
        ClassifierGuidance(clf, 1.0).grad_log_prob(x, tb, None)
    with pytest.raises(ValueError, match=r"`y` must be a long tensor of shape \(4,\)"):
        ClassifierGuidance(clf, 1.0).grad_log_prob(x, tb, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="`classifier` must return logits of shape"):
        ClassifierGuidance(lambda x, t: x.sum(1), 1.0).grad_log_prob(x, tb, torch.zeros(4).long())

    class Uncond(torch.nn.Module):
        num_classes = 0

        def forward(self, x, t, y=None):
            return x

    with pytest.raises(ValueError, match="`model` must be conditional"):
        ClassifierFreeGuidance(1.0).eps(Uncond(), x, tb, torch.zeros(4).long(), s)
    with pytest.raises(ValueError, match="`y` must be given when `guidance` is used"):
        ddpm_sample(mix.denoiser(s), s, (4, 2), guidance=ClassifierFreeGuidance(1.0),
                    progress=False)


def test_no_silent_wrong_answers_issue_15():
    """Float labels used to be truncated, out-of-range labels gave a raw RuntimeError, complex
    scales were cut, and a NaN σ_t gave a NaN mean shift."""
    import numpy as np

    x, t = torch.zeros(3, 2), torch.full((3,), 5)
    s = Schedule.su(10)
    guide = ClassifierGuidance(lambda x, t: torch.zeros(x.shape[0], 2), 1.0)
    with pytest.raises(TypeError, match="`y` must be an integer"):
        guide.grad_log_prob(x, t, torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`y` must hold class ids in 0\.\.1"):
        guide.grad_log_prob(x, t, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="`w` must be a finite number >= 0"):
        ClassifierFreeGuidance(np.complex128(1 + 1j))
    with pytest.raises(ValueError, match="`sigma` must be finite and >= 0"):
        guide.ddpm(lambda x, t, y: x, x, t, torch.zeros(3).long(), s, torch.tensor(float("nan")))
    with pytest.raises(TypeError, match="`schedule` must be a Schedule"):
        guide.eps(lambda x, t, y: x, x, t, torch.zeros(3).long(), None)
    with pytest.raises(TypeError, match="`eps_cond` must have a floating dtype"):
        cfg_combine(torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long), 1.0)
