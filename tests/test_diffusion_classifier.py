"""Tests of kexue_nb.diffusion.classifier: the noisy-input cross-entropy, its minimiser (the exact
class posterior p_t(y|x_t) of a labelled mixture), label handling and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kexue_nb.diffusion.classifier import ClassifierTrainer, noisy_log_likelihood
from kexue_nb.diffusion.data import LabelledMixture
from kexue_nb.diffusion.guidance import ClassifierGuidance
from kexue_nb.diffusion.models import MLPDenoiser, NoisyClassifier
from kexue_nb.diffusion.schedule import Schedule
from kexue_nb.diffusion.trainer import TrainConfig

T = 50
SCHEDULE = Schedule.linear(T, beta_start=1e-3, beta_end=0.2)
MIXTURE = LabelledMixture([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]], [0.5, 0.5, 0.5],
                          labels=[0, 1, 1])


def classifier(seed: int = 1) -> NoisyClassifier:
    return NoisyClassifier(num_classes=2, kind="mlp", dim=2, hidden=32, depth=2, T=T,
                           generator=torch.Generator().manual_seed(seed))


def config(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=64, lr=1e-2, warmup_steps=3, log_every=4, progress=False,
                device="cpu", ema_decay=0.9)
    return TrainConfig(**(base | kw))


def data(n: int = 512, seed: int = 0):
    x, y = MIXTURE.sample(n, torch.Generator().manual_seed(seed))
    return x, y


def test_loss_is_cross_entropy_at_q_sample():
    x, y = data()
    trainer = ClassifierTrainer(classifier(), SCHEDULE, x, y, config())
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, T + 1, (16,), generator=g)
    noise = torch.randn(16, 2, generator=g)
    expected = F.cross_entropy(trainer.model(SCHEDULE.q_sample(x[:16], t, noise).float(), t),
                               y[:16])
    torch.testing.assert_close(trainer.loss(x[:16], t, noise, y[:16]), expected)


def test_batches_keep_every_label_and_include_clean_inputs():
    """Label dropout does not apply to a classifier; t is drawn from 0..T (0: a clean input)."""
    x, y = data()
    trainer = ClassifierTrainer(classifier(), SCHEDULE, x, y, config(label_dropout=0.5))
    ts, labels = [], []
    for _ in range(40):
        x0, t, _, yb = trainer._batch()
        ts.append(t)
        labels.append(yb)
        # every drawn (x_0, y) pair is a training pair: look each x_0 up in the data
        idx = (x0[:, None, :] == x[None]).all(-1).float().argmax(1)
        assert torch.equal(yb, y[idx])
    ts = torch.cat(ts)
    assert int(ts.min()) == 0 and int(ts.max()) == T
    assert set(torch.cat(labels).tolist()) == {0, 1}


def test_learns_the_exact_noisy_posterior():
    """The cross-entropy's minimiser is p_t(y|x_t): after training, the held-out loss exceeds
    the exact posterior's by a small expected KL divergence (and never by less than 0, within
    4 paired standard errors)."""
    x, y = data(4000)
    trainer = ClassifierTrainer(classifier(), SCHEDULE, x, y,
                                config(steps=600, batch_size=256, lr=3e-3, warmup_steps=30,
                                       ema_decay=0.95))
    trainer.train()
    g = torch.Generator().manual_seed(7)
    x0, y0 = MIXTURE.sample(20000, g, dtype=torch.float64)
    t = torch.randint(0, T + 1, (20000,), generator=g)
    x_t = SCHEDULE.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    learned = noisy_log_likelihood(trainer.ema_model.eval(), x_t, t, y0)
    exact = MIXTURE.class_posterior(x_t, SCHEDULE.alpha_bar[t], SCHEDULE.beta_bar[t],
                                    log=True).gather(1, y0[:, None])[:, 0]
    excess = exact - learned                       # per-sample log-ratio, mean = E KL >= 0
    mean, se = excess.mean().item(), excess.std().item() / math.sqrt(len(excess))
    assert -4 * se < mean < 0.02, (mean, se)
    assert -exact.mean().item() > 0.1             # the task is not trivial


def test_trained_classifier_guides_towards_its_class():
    x, y = data(2000)
    trainer = ClassifierTrainer(classifier(), SCHEDULE, x, y,
                                config(steps=300, batch_size=256, lr=3e-3, warmup_steps=30))
    trainer.train()
    guide = ClassifierGuidance(trainer.ema_model.eval(), scale=1.0)
    x_t, _ = data(64, seed=3)
    tb = torch.full((64,), 10)
    y_want = torch.ones(64, dtype=torch.long)
    grad = guide.grad_log_prob(x_t, tb, y_want)
    exact = ClassifierGuidance(MIXTURE.classifier(SCHEDULE), scale=1.0).grad_log_prob(
        x_t.double(), tb, y_want)
    cos = F.cosine_similarity(grad.double(), exact, dim=1)
    assert cos.median() > 0.9


def test_resume_is_bit_identical(tmp_path):
    x, y = data()
    whole = ClassifierTrainer(classifier(), SCHEDULE, x, y, config())
    whole.train()
    first = ClassifierTrainer(classifier(), SCHEDULE, x, y, config(out_dir=tmp_path))
    first.train(stop_at=5)
    resumed = ClassifierTrainer.load_checkpoint(tmp_path / "checkpoint.safetensors", x, y)
    assert isinstance(resumed, ClassifierTrainer) and resumed.step == 5
    resumed.train()
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_noisy_log_likelihood_is_batched_log_softmax():
    clf = classifier().eval()
    x_t, y = data(50)
    t = torch.arange(50) % (T + 1)
    with torch.no_grad():
        expected = torch.log_softmax(clf(x_t, t).double(), 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(noisy_log_likelihood(clf, x_t, t, y, batch_size=7), expected)
    assert noisy_log_likelihood(clf, x_t[:0], t[:0], y[:0]).shape == (0,)


def test_bad_input():
    x, y = data()
    with pytest.raises(ValueError, match="`y` must hold the class labels"):
        ClassifierTrainer(classifier(), SCHEDULE, x, None, config())
    with pytest.raises(ValueError, match="`classifier` must have an integer attribute"):
        ClassifierTrainer(MLPDenoiser(hidden=16, depth=1, T=T), SCHEDULE, x, y, config())
    with pytest.raises(ValueError, match="`y` must hold class ids in 0..1"):
        ClassifierTrainer(classifier(), SCHEDULE, x, y + 1, config())
    class TwoOutputs(torch.nn.Module):      # claims 3 classes, returns 2 numbers per sample
        num_classes, T = 3, T

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x_t, t):
            return self.lin(x_t)

    with pytest.raises(ValueError, match=r"logits of shape \(B, 3\)"):
        ClassifierTrainer(TwoOutputs(), SCHEDULE, x, y, config()).train()
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
        noisy_log_likelihood(classifier(), x, torch.zeros(len(x), dtype=torch.long), y, 0)
    with pytest.raises(ValueError, match="`t` and `y` must have shape"):
        noisy_log_likelihood(classifier(), x, torch.zeros(3, dtype=torch.long), y)
