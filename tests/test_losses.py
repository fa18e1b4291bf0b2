"""The distillation loss of algorithms.md §4, the ê cross-entropy, and the training loop's guards."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bort.errors import BortError, TrainingDiverged
from bort.training.loop import OptimConfig, build_optimizer, train
from bort.training.losses import LogitLoss, soft_cross_entropy


def reference_loss(s, y, t, alpha_mlm, alpha_kd, tau) -> float:
    """α_mlm·CE + α_kd·τ²·KL(p_T‖p_S), mean over positions, with explicit exp/log/sum in float64."""
    s, t = s.double().tolist(), t.double().tolist()
    ce = kl = 0.0
    for row_s, row_t, gold in zip(s, t, y.tolist()):
        z = sum(math.exp(v) for v in row_s)
        ce += -(row_s[gold] - math.log(z))
        zs = sum(math.exp(v / tau) for v in row_s)
        zt = sum(math.exp(v / tau) for v in row_t)
        for vs, vt in zip(row_s, row_t):
            p, q = math.exp(vt / tau) / zt, math.exp(vs / tau) / zs
            kl += p * (math.log(p) - math.log(q))
    n = len(s)
    return alpha_mlm * ce / n + alpha_kd * tau * tau * kl / n


@pytest.mark.parametrize(("alpha_mlm", "alpha_kd", "tau"), [(0.1, 0.5, 2.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (0.3, 0.7, 0.5)])
def test_distill_loss_matches_reference(alpha_mlm, alpha_kd, tau):
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(7, 11, generator=gen) * 3, torch.randn(7, 11, generator=gen) * 3
    y = torch.randint(11, (7,), generator=gen)
    loss = LogitLoss(alpha_mlm=alpha_mlm, alpha_kd=alpha_kd, temperature=tau)
    got = loss(s, y, t if alpha_kd else None)
    assert float(got) == pytest.approx(reference_loss(s, y, t, alpha_mlm, alpha_kd, tau), rel=1e-5)
    assert loss.needs_teacher == (alpha_kd > 0)


def test_distill_loss_zero_kl_for_identical_logits():
    s = torch.randn(5, 9)
    y = torch.randint(9, (5,))
    assert float(LogitLoss(alpha_mlm=0.0, alpha_kd=1.0)(s, y, s.clone())) == pytest.approx(0.0, abs=1e-6)


def test_distill_loss_defaults_are_the_released_codes():
    loss = LogitLoss()
    assert (loss.alpha_mlm, loss.alpha_kd, loss.temperature) == (0.1, 0.5, 2.0)


@pytest.mark.parametrize("kwargs", [{"alpha_mlm": -1.0}, {"alpha_kd": -0.5}, {"temperature": 0.0}])
def test_distill_loss_rejects_bad_settings(kwargs):
    with pytest.raises(BortError):
        LogitLoss(**kwargs)


def test_no_logit_term_is_refused_where_one_is_needed():
    """Both logit weights 0 is a representation-only objective (no MLM head); ê then needs representation terms, and pretraining some term."""
    from bort.arch import Arch
    from bort.pretrain import PretrainConfig
    from bort.surrogates.error import ErrorSettings
    from bort.training.objectives import RepresentationLoss

    assert not LogitLoss(alpha_mlm=0.0, alpha_kd=0.0).active and LogitLoss().active
    with pytest.raises(BortError, match="every loss weight is 0: give at least one of --alpha-mlm, --alpha-kd, --alpha-hidden"):
        ErrorSettings(loss=LogitLoss(alpha_mlm=0.0, alpha_kd=0.0))  # the one rule of every objective (issue 37)
    with pytest.raises(BortError, match="ê needs either a logit term"):
        ErrorSettings(representation=RepresentationLoss(alpha_hidden=1.0))
    with pytest.raises(BortError, match="every loss weight is 0"):
        PretrainConfig(out="o", arch=Arch(1, 2, 32, 64), loss=LogitLoss(alpha_mlm=0.0, alpha_kd=0.0))


def test_soft_cross_entropy_matches_reference():
    gen = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 13, generator=gen), torch.randn(6, 13, generator=gen)
    p = torch.exp(t.double()) / torch.exp(t.double()).sum(-1, keepdim=True)
    log_q = s.double() - torch.log(torch.exp(s.double()).sum(-1, keepdim=True))
    reference = float(-(p * log_q).sum())
    got = float(soft_cross_entropy(s, torch.log_softmax(t, -1)))
    assert got == pytest.approx(reference, rel=1e-5)
    # With p = q it is the entropy of p, the floor of ê.
    entropy = float(-(p * torch.log(p)).sum())
    assert float(soft_cross_entropy(t, torch.log_softmax(t, -1))) == pytest.approx(entropy, rel=1e-5)


def regression_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1), itertools.repeat((x, y))


def test_train_lowers_the_loss():
    model, batches = regression_problem()
    losses = train(model, lambda b: ((model(b[0]).squeeze(1) - b[1]) ** 2).mean(), batches, steps=60, optim=OptimConfig(lr=0.1, weight_decay=0.0))
    assert len(losses) == 60
    assert losses[-1] < 0.05 * losses[0]


def test_train_raises_on_nan_loss():
    model, batches = regression_problem()
    calls = []

    def loss_fn(b):
        calls.append(1)
        loss = ((model(b[0]).squeeze(1) - b[1]) ** 2).mean()
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(TrainingDiverged, match="nan"):
        train(model, loss_fn, batches, steps=10, optim=OptimConfig())
    assert len(calls) == 3


def _scripted(values: list[float]):
    model, batches = regression_problem()
    it = iter(values)
    return model, batches, lambda b: model(b[0]).sum() * 0 + next(it)


def test_train_raises_when_loss_explodes():
    # Smoothed (0.9/0.1): 1.0, 0.95, 0.895, 0.836 (the minimum), 5.75, 13.2 > 10 × 0.836 and > 1.0 at step 5.
    model, batches, loss_fn = _scripted([1.0, 0.5, 0.4, 0.3, 50.0, 80.0, 0.2])
    with pytest.raises(TrainingDiverged, match="diverged at step 5"):
        train(model, loss_fn, batches, steps=7, optim=OptimConfig(warmup=0.0))


def test_one_hard_batch_near_zero_loss_is_not_divergence():
    """Fine-tuning: losses near 0, then one batch at 0.8 (60× the minimum, but below the first loss)."""
    model, batches, loss_fn = _scripted([0.7, 0.05, 0.02, 0.01, 0.01, 0.01, 0.8, 0.01])
    assert len(train(model, loss_fn, batches, steps=8, optim=OptimConfig(warmup=0.0))) == 8


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"weight_decay": -1.0}, {"warmup": 1.0}])
def test_optim_config_validation(kwargs):
    with pytest.raises(BortError):
        OptimConfig(**kwargs)


def test_cpu_training_uses_matmul_attention_and_fused_adamw():
    """On CPU the loop trains HF models with the matrix-product attention (the same gradients as SDPA's, to 1e-5 in fp32) and
    the optimiser is AdamW's fused kernel."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                                     vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    batch = {"input_ids": torch.randint(5, 100, (4, 9)), "attention_mask": torch.tensor([[1] * 9] * 2 + [[1] * 5 + [0] * 4] * 2),
             "labels": torch.tensor([0, 1, 0, 1])}
    assert model.config._attn_implementation == "sdpa"
    model(**batch).loss.backward()
    sdpa = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    optim = OptimConfig(lr=1e-3, grad_clip=0.0)  # the gradients as computed
    optimizer, scheduler = build_optimizer(model, optim, 1)
    assert all(g["fused"] for g in optimizer.param_groups)
    grads = []
    train(model, lambda b: model(**b).loss, itertools.repeat(batch), steps=1, optim=optim, optimizer=optimizer,
          scheduler=scheduler, on_step=lambda *_: grads.extend(p.grad.clone() for p in model.parameters()))
    assert model.config._attn_implementation == "eager" and model.bert.encoder.layer[0].attention.self.config._attn_implementation == "eager"
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(sdpa, grads))
