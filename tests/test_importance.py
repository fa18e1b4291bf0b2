"""``--init importance``: teacher slices that keep each layer's most important FFN units (bort.models.slices).

The score of a unit is checked against ablation, computed another way: removing unit j changes the layer's down-projection
output by a_j·W[:, j], whose mean norm over real tokens is the score. Then the slices: the full shape is the teacher, a
smaller FFN keeps the top units in the teacher's order, planted important units are found and start the student closer to
the teacher than leading slices do; and the option end to end through `bort pretrain` and ê."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_families import CONFIGS, FULL, _ids, _teacher
from transformers import AutoModelForMaskedLM, BertConfig

from bort.arch import Arch
from bort.cli import main
from bort.data.corpus import load_corpus
from bort.errors import BortError
from bort.models.families import FAMILIES
from bort.models.slices import _down_projection, ffn_importance, init_from_teacher
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSettings, ErrorSurrogate
from bort.training.hparams import Theta


def _down(model, i: int) -> torch.nn.Linear:
    fam = FAMILIES[model.config.model_type]
    return _down_projection(fam.layer(model, i), fam.arch(model.config).I)


def _run(model, ids, mask) -> None:
    with torch.no_grad():
        model.base_model(**FAMILIES[model.config.model_type].inputs({"input_ids": ids, "attention_mask": mask}))


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_a_units_score_is_the_mean_change_its_ablation_makes(model_type):
    teacher = _teacher(model_type)
    ids, mask = _ids()
    scores = ffn_importance(teacher, [(ids, mask)])
    assert len(scores) == FULL.D and all(s.shape == (FULL.I,) for s in scores)
    layer = 1
    down = _down(teacher, layer)
    outputs = []
    handle = down.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
    try:
        _run(teacher, ids, mask)
        full = outputs.pop()
        real = mask.bool()
        for j in range(FULL.I):
            column = down.weight[:, j].detach().clone()
            with torch.no_grad():
                down.weight[:, j] = 0
            _run(teacher, ids, mask)
            with torch.no_grad():
                down.weight[:, j] = column
            change = (full - outputs.pop())[real].norm(dim=-1).mean()
            assert float(scores[layer][j]) == pytest.approx(float(change), rel=1e-4, abs=1e-7), f"unit {j}"
    finally:
        handle.remove()


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_the_full_shape_keeps_every_unit_and_is_the_teacher(model_type):
    fam, teacher = FAMILIES[model_type], _teacher(model_type)
    ids, mask = _ids()
    torch.manual_seed(1)
    student = AutoModelForMaskedLM.from_config(fam.with_arch(teacher.config, FULL)).eval()
    init_from_teacher(student, teacher, ffn_importance(teacher, [(ids, mask)]))
    with torch.no_grad():
        assert torch.equal(student(input_ids=ids, attention_mask=mask).logits, teacher(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_a_smaller_ffn_keeps_the_top_units_in_the_teachers_order(model_type):
    fam, teacher = FAMILIES[model_type], _teacher(model_type)
    scores = ffn_importance(teacher, [_ids()])
    small = Arch(2, 4, 32, 24)  # the hidden width and heads of the teacher: only the FFN is cut
    student = AutoModelForMaskedLM.from_config(fam.with_arch(teacher.config, small))
    init_from_teacher(student, teacher, scores)
    for i, layer in enumerate((0, 2)):  # ⌊(i+1)·3/2⌋ − 1
        kept = sorted(scores[layer].argsort(descending=True)[: small.I].tolist())
        assert torch.equal(_down(student, i).weight, _down(teacher, layer).weight[:, kept])
        assert kept != list(range(small.I))  # a random teacher's top units are not its first ones: the check can fail


def _planted() -> tuple[AutoModelForMaskedLM, list[int]]:
    """A BERT teacher whose first half of FFN units writes almost nothing: the important units are the second half."""
    torch.manual_seed(0)
    teacher = AutoModelForMaskedLM.from_config(CONFIGS["bert"]()).eval()
    with torch.no_grad():
        for i in range(FULL.D):
            _down(teacher, i).weight[:, : FULL.I // 2] *= 0.01
    return teacher, list(range(FULL.I // 2, FULL.I))


def test_planted_units_are_found_and_start_the_student_closer_than_leading_slices():
    teacher, important = _planted()
    ids, mask = _ids()
    scores = ffn_importance(teacher, [(ids, mask)])
    assert all(sorted(s.topk(FULL.I // 2).indices.tolist()) == important for s in scores)
    config = FAMILIES["bert"].with_arch(teacher.config, Arch(FULL.D, FULL.A, FULL.H, FULL.I // 2))
    gaps = {}
    with torch.no_grad():
        target = teacher.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        for name, units in (("leading", None), ("importance", scores)):
            student = AutoModelForMaskedLM.from_config(config).eval()
            init_from_teacher(student, teacher, units)
            hidden = student.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            gaps[name] = float(((hidden - target) ** 2)[mask.bool()].mean())
    assert gaps["importance"] < 0.1 * gaps["leading"], gaps


def test_a_teacher_whose_ffn_is_as_wide_as_its_hidden_states_is_refused():
    teacher = AutoModelForMaskedLM.from_config(BertConfig(vocab_size=97, num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                                          intermediate_size=32, max_position_embeddings=40))
    with pytest.raises(BortError, match="--init teacher"):
        ffn_importance(teacher, [_ids()])


def test_pretrain_init_importance_end_to_end(tmp_path, bert_teacher, corpus_file):
    """With a learning rate of 1e-30 the one step changes nothing: each saved FFN unit is one of the teacher's last layer's,
    48 of its 128 kept, in its order, not the leading 48."""
    out = tmp_path / "pt"
    assert main(["pretrain", "--teacher", str(bert_teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,4,64,48",
                 "--init", "importance", "--lr", "1e-30", "--steps", "1", "--save-every", "1", "--eval-every", "1", "--seq-len", "32",
                 "--batch-size", "4", "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((out / "pretrain.json").read_text())["init"] == "importance"
    student, teacher = AutoModelForMaskedLM.from_pretrained(out / "model"), AutoModelForMaskedLM.from_pretrained(bert_teacher)
    rows, source = _down(student, 0).weight.T, _down(teacher, 1).weight.T  # one row per unit
    kept = [next(j for j in range(len(source)) if torch.equal(row, source[j])) for row in rows]
    assert kept == sorted(kept) and len(set(kept)) == 48 and kept != list(range(48))


def test_error_surrogate_with_importance_slices(bert_teacher, corpus_file):
    """ξ = T from importance slices is the teacher (ê 0 after a negligible step); a smaller FFN scores otherwise than from
    leading slices."""
    teacher = load_teacher(bert_teacher)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    theta = Theta(lr=1e-12, batch_size=4)
    make = {init: ErrorSurrogate(teacher, corpus, ErrorSettings(steps=1, seed=1, eval_sequences=8, eval_batch_size=4, init=init)).prepare()
            for init in ("teacher", "importance")}
    assert make["importance"](Arch(2, 4, 64, 128), theta) == pytest.approx(0.0, abs=1e-5)
    small = {init: s(Arch(2, 4, 64, 32), theta) for init, s in make.items()}
    assert small["importance"] != pytest.approx(small["teacher"], rel=1e-3) and min(small.values()) > 0


def test_compress_hands_its_init_to_the_extraction_and_the_pretraining(tmp_path, bert_teacher):
    from bort.compress import CompressConfig
    from bort.compress.recipe import extract_config, pretrain_config

    cfg = CompressConfig(out=tmp_path / "c", teacher=str(bert_teacher), init="importance", seq_len=32)
    assert extract_config(cfg, tmp_path / "e", str(bert_teacher), "cpu", {}).error_settings().init == "importance"
    assert pretrain_config(cfg, tmp_path / "p", str(bert_teacher), Arch(1, 4, 64, 48), "cpu", {}).init == "importance"
    with pytest.raises(BortError, match="--init must be one of"):  # compress checks each stage's config before it runs
        extract_config(replace(cfg, init="leading"), tmp_path / "e", str(bert_teacher), "cpu", {})
