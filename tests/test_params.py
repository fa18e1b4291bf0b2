"""p̂(ξ) against the parameters of the model actually built, and the spaces Ξ (algorithms.md §1-2)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, BertConfig, RobertaConfig

from bort.arch import Arch
from bort.errors import BortError
from bort.extract.space import Space, auto, bort_paper, load_space
from bort.models.student import student_config
from bort.surrogates.params import count_params

FAMILIES = {
    "bert": lambda: BertConfig(vocab_size=301, max_position_embeddings=40, type_vocab_size=2),
    "bert-3types": lambda: BertConfig(vocab_size=257, max_position_embeddings=24, type_vocab_size=3, hidden_act="relu"),
    "roberta": lambda: RobertaConfig(vocab_size=299, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1),
}
ARCHS = [
    Arch(1, 1, 16, 16), Arch(1, 2, 32, 64), Arch(1, 4, 64, 32), Arch(2, 2, 32, 96), Arch(2, 4, 64, 128),
    Arch(3, 3, 48, 80), Arch(2, 8, 64, 256), Arch(4, 1, 24, 40), Arch(1, 6, 96, 192), Arch(3, 2, 40, 24),
    Arch(2, 5, 80, 160), Arch(1, 16, 128, 64), Arch(5, 4, 32, 32), Arch(2, 12, 96, 48), Arch(1, 3, 36, 100),
]


def built_counts(config, arch: Arch) -> tuple[int, int]:
    """(total, embeddings) parameters of the base model as transformers builds it, no pooler."""
    torch.manual_seed(0)
    model = AutoModel.from_config(student_config(config, arch), add_pooling_layer=False)
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.embeddings.parameters())


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_count_equals_built_model(family, arch):
    """p̂ total equals sum(numel) of the built encoder; effective = total − embeddings."""
    config = FAMILIES[family]()
    total, embeddings = built_counts(config, arch)
    got = count_params(config, arch)
    assert got.total == total
    assert got.effective == total - embeddings


def test_heads_do_not_change_the_count():
    """A changes the split of H into heads, never the parameter count."""
    config = FAMILIES["bert"]()
    counts = {count_params(config, Arch(2, a, 96, 64)).total for a in (1, 2, 3, 4, 6, 8, 12)}
    assert len(counts) == 1


def test_bert_large_known_value():
    """BERT-large ⟨24,16,1024,4096⟩ with BERT's vocabulary: 334,092,288 without the pooler (≈ 334M)."""
    config = BertConfig()  # vocab 30522, 512 positions, 2 types
    arch = Arch(24, 16, 1024, 4096)
    with torch.device("meta"):  # exact shapes without allocating 1.3 GB
        model = AutoModel.from_config(student_config(config, arch), add_pooling_layer=False)
    reference = sum(p.numel() for p in model.parameters())
    got = count_params(config, arch)
    assert got.total == reference == 334_092_288
    assert got.effective == reference - sum(p.numel() for p in model.embeddings.parameters())
    # BERT-base without the pooler: the widely quoted 109,482,240 minus the pooler's 768·768 + 768.
    assert count_params(config, Arch(12, 12, 768, 3072)).total == 109_482_240 - (768 * 768 + 768)


def test_bort_paper_space_has_300_tuples():
    archs = bort_paper().archs()
    assert len(archs) == len(set(archs)) == 300
    assert all(a.H % a.A == 0 for a in archs)
    # Independently: every product tuple with H divisible by A.
    grid = {(d, a, h, i) for d in (2, 4, 6, 8, 10, 12) for a in (4, 8, 12, 16) for h in (512, 768, 1024) for i in (256, 512, 768, 1024, 3072) if h % a == 0}
    assert {x.astuple() for x in archs} == grid


@pytest.mark.parametrize(("teacher", "expected"), [(Arch(6, 12, 384, 1536), 263), (Arch(12, 12, 768, 3072), 287)])
def test_auto_space_matches_its_docstring(teacher, expected):
    """auto(T) for MiniLM-L6 and BERT-base: the counts its docstring gives, head dims ≥ 16, T excluded."""
    archs = auto(teacher).archs(exclude=teacher)
    assert len(archs) == expected
    assert teacher not in archs
    assert all(a.head_dim >= 16 and a.H % a.A == 0 for a in archs)
    assert max(a.D for a in archs) == teacher.D and max(a.H for a in archs) == teacher.H and max(a.I for a in archs) == teacher.I


def test_space_excludes_teacher_and_filters_divisibility():
    space = Space(D=(1, 2), A=(2, 3), H=(32, 48), I=(64,))
    archs = space.archs(exclude=Arch(2, 2, 48, 64))
    assert {a.astuple() for a in archs} == {(d, a, h, 64) for d in (1, 2) for a in (2, 3) for h in (32, 48) if h % a == 0} - {(2, 2, 48, 64)}


def test_load_space_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("D: [1, 3]\nA: 2\nH: [32]\nI: [16, 64]\n", encoding="utf-8")
    space = load_space(path, Arch(3, 2, 32, 64))
    assert space.D == (1, 3) and space.A == (2,) and space.I == (16, 64)
    assert [a.astuple() for a in space.archs(exclude=Arch(3, 2, 32, 64))] == [(1, 2, 32, 16), (1, 2, 32, 64), (3, 2, 32, 16)]


@pytest.mark.parametrize("text", ["2,3,32,64", "1,2,3", "0,1,16,16", "a,b,c,d", "2,4,64,-1"])
def test_arch_parse_rejects_bad_tuples(text):
    with pytest.raises(BortError):
        Arch.parse(text)


def test_arch_parse_roundtrip():
    arch = Arch.parse(" 4, 8 ,768,1024")
    assert arch == Arch(4, 8, 768, 1024) and arch.key == "4,8,768,1024" and arch.head_dim == 96
