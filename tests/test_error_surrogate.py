"""ê(ξ): short distillation against the teacher, scored on fixed held-out masked batches (§2)."""

from __future__ import annotations

import dataclasses

import pytest

from bort.arch import Arch
from bort.data.corpus import load_corpus
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSettings, ErrorSurrogate
from bort.training.hparams import Theta
from bort.training.mlm_eval import evaluate_mlm


@pytest.fixture(scope="module")
def setup(bert_teacher, corpus_file):
    teacher = load_teacher(bert_teacher)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    settings = ErrorSettings(steps=3, eval_sequences=8, eval_batch_size=4)
    return teacher, corpus, settings


def test_teacher_scores_its_own_entropy(setup):
    """The teacher's own cross-entropy is H(p_T, p_T), its entropy; any student's ê is at least the floor (Gibbs)."""
    teacher, corpus, settings = setup
    surrogate = ErrorSurrogate(teacher, corpus, settings)
    own = evaluate_mlm(teacher.model, surrogate.eval_batches, surrogate.teacher_lp)["kd_ce"]
    assert own == pytest.approx(surrogate.entropy(), rel=1e-5)
    assert sum(len(b.targets) for b in surrogate.eval_batches) == sum(len(lp) for lp in surrogate.teacher_lp) > 0
    e = surrogate(Arch(1, 2, 32, 64), Theta(batch_size=4))
    assert e >= surrogate.floor() - 1e-6


def test_error_is_reproducible_with_or_without_the_logit_cache(setup):
    """Same ξ and θ → the same ê, in a fresh surrogate, and whether teacher logits are cached or not."""
    teacher, corpus, settings = setup
    arch, theta = Arch(1, 4, 32, 64), Theta(batch_size=4)
    first = ErrorSurrogate(teacher, corpus, settings)
    a = first(arch, theta)
    b = first(arch, theta)  # now from the teacher-logit cache
    uncached = ErrorSurrogate(teacher, corpus, dataclasses.replace(settings, teacher_cache_gb=0.0))(arch, theta)
    assert len(first._logit_cache[4]) == settings.steps
    assert a == b == uncached
    assert first(Arch(2, 2, 64, 64), theta) != a  # and it does depend on ξ
