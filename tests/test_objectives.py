"""Representation distillation (hidden states, attention relations, sentence embeddings) and the encoder students it makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, BertConfig, BertModel

from bort.cli import main
from bort.data.sentences import SentenceStream, load_sentences
from bort.errors import BortError
from bort.models.families import family
from bort.models.loading import load_tokenizer
from bort.models.sentence import Pooling, embed, read_pooling
from bort.pretrain import PretrainConfig, pretrain
from bort.training.losses import LogitLoss
from bort.training.objectives import Distiller, RepresentationLoss, layer_pairs, relation_heads, relation_kl, short_views

ALL = RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0, alpha_embed=1.0, layer_map="uniform")
POOLING = {"word_embedding_dimension": 64, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
           "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]


def encoder(arch: tuple[int, int, int, int], seed: int) -> BertModel:
    d, a, h, i = arch
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=50, num_hidden_layers=d, num_attention_heads=a, hidden_size=h, intermediate_size=i,
                                max_position_embeddings=32)).eval()


def terms(student: BertModel, teacher: BertModel, loss: RepresentationLoss = ALL) -> dict[str, float]:
    torch.manual_seed(1)
    ids = torch.randint(5, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0  # a padded row
    distiller = Distiller(student, teacher.config, loss, Pooling(normalize=True)).eval()
    with torch.no_grad():
        return {k: float(v) for k, v in distiller.terms(distiller(ids, mask), distiller.teacher_views(teacher, ids, mask), mask).items()}


def test_every_term_is_zero_for_a_copy_of_the_teacher_and_positive_otherwise():
    teacher = encoder((2, 4, 64, 128), seed=0)
    copy = encoder((2, 4, 64, 128), seed=5)
    copy.load_state_dict(teacher.state_dict())
    same = terms(copy, teacher)
    assert set(same) == {"hidden_mse", "attn_kl", "embed_distance"}
    assert all(abs(v) < 1e-6 for v in same.values()), same
    with torch.no_grad():
        for w in (copy.encoder.layer[1].attention.self.key.weight, copy.encoder.layer[1].output.dense.weight):
            w.add_(0.5 * torch.randn_like(w))
    moved = terms(copy, teacher)
    assert all(v > 1e-6 for v in moved.values()), moved


def test_relations_compare_any_heads_and_widths_and_train_the_projection():
    teacher, student = encoder((2, 4, 64, 128), seed=0), encoder((1, 3, 48, 64), seed=1)
    loss = RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0, alpha_embed=1.0)
    assert relation_heads(48, 64, 4) == 4 and relation_heads(96, 384, 12) == 12 and relation_heads(128, 384, 12) == 8
    with pytest.raises(BortError, match="must divide both"):
        relation_heads(48, 64, 4, asked=5)
    distiller = Distiller(student, teacher.config, loss, Pooling()).train()
    ids = torch.randint(5, 50, (2, 10))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        t_views = distiller.teacher_views(teacher, ids, mask)
    values = distiller.terms(distiller(ids, mask), t_views, mask)
    assert all(torch.isfinite(v) and v > 0 for v in values.values())
    distiller.weighted(values).backward()
    assert distiller.hidden_proj[0].weight.grad.abs().sum() > 0 and distiller.embed_proj.weight.grad.abs().sum() > 0
    assert student.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_relations_of_the_last_layers_are_the_mean_of_each_pair(tmp_path):
    """--attn-layers 2: the student's last two layers, each paired with the teacher layer of the depth rule; attn_kl is the
    mean of each pair's Σ over Q, K, V, computed here layer by layer from hooks on the stock modules."""
    teacher, student = encoder((4, 4, 64, 128), seed=0), encoder((2, 4, 64, 128), seed=1)
    assert layer_pairs(2, 4, "last", 2) == [(0, 1), (1, 3)] and layer_pairs(3, 6, "last") == [(2, 5)]
    distiller = Distiller(student, teacher.config, RepresentationLoss(alpha_attn=1.0, attn_layers=2), None).eval()
    assert distiller.qkv_pairs == [(0, 1), (1, 3)]
    ids = torch.randint(5, 50, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0

    def qkv(model, layer):
        got = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: got.append(out)) for m in family(model.config).qkv_modules(model, layer)]
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        for h in hooks:
            h.remove()
        return got

    with torch.no_grad():
        value = float(distiller.terms(distiller(ids, mask), distiller.teacher_views(teacher, ids, mask), mask)["attn_kl"])
    per_pair = [sum(float(relation_kl(t, s, 4, mask)) for s, t in zip(qkv(student, i), qkv(teacher, j))) for i, j in [(0, 1), (1, 3)]]
    assert value == pytest.approx(sum(per_pair) / 2, rel=1e-5) and per_pair[0] != pytest.approx(per_pair[1])
    with pytest.raises(BortError, match="--attn-layers 3 is more than the student's 2 layers"):
        Distiller(student, teacher.config, RepresentationLoss(alpha_attn=1.0, attn_layers=3), None)
    with pytest.raises(BortError, match="--attn-layer names one teacher layer"):
        RepresentationLoss(alpha_attn=1.0, attn_layer=2, attn_layers=2)
    with pytest.raises(BortError, match="must be at least 1"):
        RepresentationLoss(attn_layers=0)


def test_relation_kl_against_a_direct_computation():
    """KL over softmax(q·qᵀ/√d) per relation head, computed here by loops (one head, one row at a time)."""
    torch.manual_seed(0)
    t, s = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    mask = torch.ones(1, 5, dtype=torch.long)
    expected = 0.0
    for head in range(2):
        tq, sq = t[0, :, head * 4:(head + 1) * 4], s[0, :, head * 4:(head + 1) * 4]
        for row in range(5):
            p = torch.softmax(tq[row] @ tq.T / 2.0, -1)
            q = torch.softmax(sq[row] @ sq.T / 2.0, -1)
            expected += float((p * (p / q).log()).sum())
    assert float(relation_kl(t, s, 2, mask)) == pytest.approx(expected / 10, rel=1e-5)


def test_layer_map_follows_the_init_rule():
    assert layer_pairs(3, 6, "last") == [(2, 5)]
    assert layer_pairs(3, 6, "uniform") == [(0, 1), (1, 3), (2, 5)]
    assert layer_pairs(2, 6, "uniform") == [(0, 2), (1, 5)]


@pytest.fixture(scope="module")
def st_teacher(tmp_path_factory, bert_teacher_nohead) -> Path:
    """The tiny bare-encoder teacher as a sentence-transformers folder (mean pooling, normalised)."""
    folder = tmp_path_factory.mktemp("st_teacher") / "t"
    shutil.copytree(bert_teacher_nohead, folder)
    (folder / "modules.json").write_text(json.dumps(MODULES))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(POOLING))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 32, "do_lower_case": false}')
    return folder


def _cfg(teacher: Path, corpus: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(out=out, teacher=str(teacher), corpus=str(corpus), arch=None, student=None, init="teacher", steps=6, batch_size=4, seq_len=32,
                save_every=3, eval_every=3, eval_sequences=8, bf16="off", device="cpu", progress=False,
                loss=LogitLoss(alpha_mlm=0.0, alpha_kd=0.0), representation=ALL)
    base.update(kw)
    from bort.arch import Arch

    base["arch"] = base["arch"] or Arch(1, 2, 32, 64)
    return PretrainConfig(**base)


def test_bare_encoder_teacher_end_to_end(tmp_path, st_teacher, corpus_file, monkeypatch):
    """No logit term: no MLM head is trained, the student is an encoder with the teacher's sentence-transformers files,
    the projections (32 → 64) stay out of it (but in its checkpoints), and the held-out value of every term is recorded."""
    import bort.training.run as run_mod

    saved, real_save = [], run_mod.save_checkpoint

    def recording(folder, model, *args, **kwargs):
        real_save(folder, model, *args, **kwargs)
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            saved.append(set(f.keys()))

    monkeypatch.setattr(run_mod, "save_checkpoint", recording)
    out = tmp_path / "student"
    result = pretrain(_cfg(st_teacher, corpus_file, out))
    assert result.output == "encoder" and set(result.heldout) == {"hidden_mse", "attn_kl", "embed_distance"}
    assert not (out / "teacher_mlm").exists()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [3, 6] and all("attn_kl" in line for line in lines)
    model = AutoModel.from_pretrained(out / "model")
    assert type(model).__name__ == "BertModel" and model.config.hidden_size == 32
    with safe_open(str(out / "model" / "model.safetensors"), "pt") as f:
        assert not any("proj" in k for k in f.keys())
    assert saved and all({"hidden_proj.0.weight", "embed_proj.weight"} <= keys for keys in saved)  # they resume with the student
    assert not (out / "checkpoint").exists()  # gone once the run finished
    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        assert (out / "model" / name).read_text() == (st_teacher / name).read_text(), name
    model_folder = out / "model"
    assert read_pooling(model_folder) == Pooling(mode="mean", normalize=True, source=f"sentence-transformers ({model_folder / 'modules.json'})")
    st = pytest.importorskip("sentence_transformers")
    texts = ["a small model", "the teacher reads the same text"]
    ours = embed(model, load_tokenizer(model_folder), texts, read_pooling(model_folder))
    theirs = torch.tensor(st.SentenceTransformer(str(model_folder), device="cpu").encode(texts))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_short_views_cut_each_block_to_a_seeded_prefix():
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (400, 32))
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] … [SEP]
    cut, mask = short_views(ids, 4, sep_id=2, pad_id=0, seed=7)
    lengths = mask.sum(1)
    assert cut.shape == mask.shape == ids.shape and int(lengths.min()) >= 4 and int(lengths.max()) <= 32
    assert torch.equal(mask, (torch.arange(32)[None] < lengths[:, None]).long())  # a prefix of each row
    rows = torch.arange(400)
    assert torch.equal(cut[rows, lengths - 1], torch.full((400,), 2))  # ends in [SEP]
    assert torch.equal(cut[:, 0], ids[:, 0]) and bool((cut[mask == 0] == 0).all())
    inner = (torch.arange(32)[None] < (lengths - 1)[:, None])
    assert torch.equal(cut[inner], ids[inner])  # the kept tokens are the block's own
    # Log-uniform over [4, 32]: half the rows at most √(4·32) ≈ 11 tokens long.
    assert 0.4 < float((lengths <= 11).float().mean()) < 0.6 and int(lengths.max()) == 32
    assert torch.equal(short_views(ids, 4, sep_id=2, pad_id=0, seed=7)[0], cut)  # the same batch is cut alike (resume)
    assert not torch.equal(short_views(ids, 4, sep_id=2, pad_id=0, seed=8)[1], mask)


@pytest.mark.parametrize("min_view_len, inputs, grouped", [(None, "blocks", False), (4, "blocks", False), (None, "sentences", False),
                                                             (None, "sentences", True)])
def test_representation_resume_is_exact(tmp_path, st_teacher, corpus_file, monkeypatch, min_view_len, inputs, grouped):
    import bort.training.run as run_mod

    kw = dict(min_view_len=min_view_len, inputs=inputs, group_by_length=grouped)
    whole = pretrain(_cfg(st_teacher, corpus_file, tmp_path / "whole", **kw))
    assert whole.min_view_len == min_view_len and whole.inputs == json.loads((tmp_path / "whole" / "pretrain.json").read_text())["inputs"] == inputs
    if inputs == "sentences":  # the real tokens of the padded sentence batches (grouped by length or not), not whole blocks
        rows = load_sentences(str(corpus_file), load_tokenizer(st_teacher), max_len=32).train
        assert whole.tokens_seen == SentenceStream(rows, 4, seed=0, pad_id=0, group_by_length=grouped).tokens(6) < 6 * 4 * 32
    real = run_mod.save_checkpoint

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(_cfg(st_teacher, corpus_file, tmp_path / "killed", **kw))
    monkeypatch.setattr(run_mod, "save_checkpoint", real)
    resumed = pretrain(_cfg(st_teacher, corpus_file, tmp_path / "killed", **kw))
    assert resumed.heldout == whole.heldout and resumed.tokens_seen == whole.tokens_seen
    with safe_open(str(tmp_path / "whole" / "model" / "model.safetensors"), "pt") as a, \
            safe_open(str(tmp_path / "killed" / "model" / "model.safetensors"), "pt") as b:
        for key in a.keys():
            torch.testing.assert_close(a.get_tensor(key), b.get_tensor(key), rtol=0, atol=0)


def test_logit_and_representation_terms_together(tmp_path, bert_teacher, corpus_file):
    """With a logit term the output is the masked-LM folder, as before; every active term is held out."""
    result = pretrain(_cfg(bert_teacher, corpus_file, tmp_path / "mix", loss=LogitLoss(alpha_mlm=0.1, alpha_kd=0.5),
                           representation=RepresentationLoss(alpha_hidden=1.0), steps=3))
    assert result.output == "masked-lm" and set(result.heldout) == {"mlm_accuracy", "kd_ce", "hidden_mse"}
    assert json.loads((tmp_path / "mix" / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]


@pytest.mark.parametrize("flags, needle", [
    (["--alpha-hidden", "-1"], "must be 0 or more"),
    (["--alpha-mlm", "0", "--alpha-kd", "0"], "every loss weight is 0"),
    (["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-attn", "1", "--relation-heads", "5"], "must divide both"),
    (["--layer-map", "every"], "invalid choice"),
    (["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--min-view-len", "1"], "--min-view-len must be between 2"),
    (["--alpha-hidden", "1", "--min-view-len", "8"], "with representation terms alone"),
])
def test_bad_objectives_are_refused(tmp_path, capsys, bert_teacher, corpus_file, flags, needle):
    with pytest.raises(SystemExit) if "invalid choice" in needle else _nothing():
        code = main(["pretrain", "--teacher", str(bert_teacher), "--corpus", str(corpus_file), "--arch", "1,2,32,64", "--seq-len", "32",
                     "--steps", "1", "--out", str(tmp_path / "o"), "--no-progress", *flags])
        assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_embedding_evaluation_matches_a_direct_computation(tmp_path, st_teacher):
    """`bort evaluate --embedding`: Pearson/Spearman of the cosine of the two sentences' embeddings against the gold scores."""
    from bort.evaluate.recipe import EvaluateConfig, evaluate
    from bort.tasks import metrics
    data = tmp_path / "STS-B"
    data.mkdir()
    rows = [("a cat sits", "a cat is sitting", 4.5), ("the dog runs", "a man sings", 0.5), ("we read text", "text is read", 3.8),
            ("a fox jumps", "the fox leaps", 4.0), ("it rains", "the sun shines", 1.0)]
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    (data / "dev.tsv").write_text(head + "".join(f"{i}\tg\tf\t2017\t{i}\ts\ts\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(rows)))
    result = evaluate(EvaluateConfig(model=str(st_teacher), task="glue/stsb", data=data, embedding=True))
    model, tok = AutoModel.from_pretrained(st_teacher), load_tokenizer(st_teacher)
    e1 = embed(model, tok, [r[0] for r in rows], read_pooling(st_teacher))
    e2 = embed(model, tok, [r[1] for r in rows], read_pooling(st_teacher))
    cos = torch.nn.functional.cosine_similarity(e1, e2).tolist()
    gold = [r[2] for r in rows]
    assert result.metrics == pytest.approx({"pearson": metrics.pearson(cos, gold), "spearman": metrics.spearman(cos, gold)})
    with pytest.raises(BortError, match="sentence-pair similarity"):
        evaluate(EvaluateConfig(model=str(st_teacher), task="glue/rte", data=data, embedding=True))


def test_two_processes_match_one_with_representation_terms(tmp_path, st_teacher, corpus_file):
    """torchrun with 2 gloo processes and the same global batch ends where 1 process does (dropout off, so the ranks'
    RNG streams do not matter): each term is a mean over the shard, and DDP averages the gradients."""
    import os
    import subprocess
    import sys

    still = tmp_path / "still"
    shutil.copytree(st_teacher, still)
    config = json.loads((still / "config.json").read_text())
    (still / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
    args = ["pretrain", "--teacher", str(still), "--corpus", str(corpus_file), "--arch", "1,2,32,64", "--seq-len", "32", "--steps", "3",
            "--batch-size", "4", "--eval-every", "3", "--save-every", "3", "--eval-sequences", "8", "--bf16", "off", "--device", "cpu",
            "--no-progress", "--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--alpha-attn", "1", "--alpha-embed", "1",
            "--init", "teacher"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "29519",
           "-m", "bort", *args, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "pretrain.json").read_text())["world_size"] == 2
    with safe_open(str(tmp_path / "one" / "model" / "model.safetensors"), "pt") as a, \
            safe_open(str(tmp_path / "two" / "model" / "model.safetensors"), "pt") as b:
        for key in a.keys():
            torch.testing.assert_close(b.get_tensor(key), a.get_tensor(key), rtol=1e-4, atol=1e-5)


def test_the_token_types_of_sentence_pairs_reach_student_and_teacher():
    """Held-out terms over (ids, mask, token types) batches: 0 for a copy of the teacher; moving the student's embedding of
    the second segment's type moves them, so the types reach the student (and the same types the teacher)."""
    from bort.training.objectives import heldout_terms

    teacher = encoder((2, 4, 64, 128), seed=0)
    copy = encoder((2, 4, 64, 128), seed=5)
    copy.load_state_dict(teacher.state_dict())
    ids = torch.randint(5, 50, (2, 10))
    types = torch.tensor([[0] * 5 + [1] * 5, [0] * 6 + [1] * 4])
    batches = [(ids, torch.ones_like(ids), types)]
    distiller = Distiller(copy, teacher.config, RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0), None)
    assert all(abs(v) < 1e-6 for v in heldout_terms(distiller, teacher, batches).values())
    with torch.no_grad():
        copy.embeddings.token_type_embeddings.weight[1].add_(torch.randn(64))  # not a constant: LayerNorm would take that away
    assert all(v > 1e-4 for v in heldout_terms(distiller, teacher, batches).values())
    assert all(abs(v) < 1e-6 for v in heldout_terms(distiller, teacher, [(ids, torch.ones_like(ids))]).values())  # no types: type 0 alone
