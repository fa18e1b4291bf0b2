"""The family adapters (issue 39): for each family, a tiny random teacher built from the stock transformers config class;
ξ read and set through the adapter, the full-shape student sliced from the teacher gives its outputs exactly, a smaller one
loads with the stock classes, p̂ is exact, the attention relations find the family's Q/K/V, and the MLM head is the model's."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    MPNetConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from bort.arch import Arch
from bort.errors import BortError
from bort.models.families import FAMILIES, config_arch, family
from bort.models.slices import init_from_teacher
from bort.surrogates.params import count_params
from bort.training.objectives import Distiller, RepresentationLoss

V, P = 97, 40  # vocabulary and positions of the tiny teachers
CONFIGS = {
    "bert": lambda: BertConfig(vocab_size=V, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64, max_position_embeddings=P),
    "roberta": lambda: RobertaConfig(vocab_size=V, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                                     max_position_embeddings=P + 2, pad_token_id=1, type_vocab_size=1),
    "xlm-roberta": lambda: XLMRobertaConfig(vocab_size=V, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                                            max_position_embeddings=P + 2, pad_token_id=1, type_vocab_size=1),
    "electra": lambda: ElectraConfig(vocab_size=V, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                                     embedding_size=16, max_position_embeddings=P),
    "mpnet": lambda: MPNetConfig(vocab_size=V, num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                                 max_position_embeddings=P + 2, pad_token_id=1),  # 32 relative buckets: MPNet hard-codes them
    "distilbert": lambda: DistilBertConfig(vocab_size=V, n_layers=3, n_heads=4, dim=32, hidden_dim=64, max_position_embeddings=P),
}
FULL, SMALL = Arch(3, 4, 32, 64), Arch(2, 2, 16, 24)


def test_every_family_has_a_tiny_teacher_here():
    assert set(CONFIGS) == set(FAMILIES)


def _ids(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    return ids, mask


def _teacher(model_type: str):
    torch.manual_seed(0)
    return AutoModelForMaskedLM.from_config(CONFIGS[model_type]()).eval()


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_the_full_shape_student_sliced_from_the_teacher_is_the_teacher(model_type):
    fam, teacher = FAMILIES[model_type], _teacher(model_type)
    assert fam.arch(teacher.config) == FULL and type(teacher).__name__ == fam.mlm_class
    torch.manual_seed(1)
    student = AutoModelForMaskedLM.from_config(fam.with_arch(teacher.config, FULL)).eval()
    init_from_teacher(student, teacher)
    ids, mask = _ids()
    with torch.no_grad():
        assert torch.equal(student(input_ids=ids, attention_mask=mask).logits, teacher(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_a_smaller_student_is_sliced_and_loads_with_the_stock_classes(model_type, tmp_path):
    fam, teacher = FAMILIES[model_type], _teacher(model_type)
    config = fam.with_arch(teacher.config, SMALL)
    assert fam.arch(config) == SMALL and fam.arch(teacher.config) == FULL  # the teacher's config is not changed
    student = AutoModelForMaskedLM.from_config(config)
    names = init_from_teacher(student, teacher)
    assert names and all(fam.layers.split(".")[-1] in n for n in names if ".layer." in n)
    student.save_pretrained(tmp_path)
    again = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    bare = AutoModel.from_pretrained(tmp_path)
    assert type(again) is type(student) and fam.arch(bare.config) == SMALL
    ids, mask = _ids()
    with torch.no_grad():
        logits = again(input_ids=ids, attention_mask=mask).logits
        hidden = again.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(fam.mlm_head_module(again)(hidden), logits, atol=1e-5)  # the adapter's head is the model's


@pytest.mark.parametrize("model_type", list(FAMILIES))
@pytest.mark.parametrize("arch", [FULL, SMALL, Arch(1, 1, 8, 8), Arch(4, 8, 48, 96)])
def test_p_hat_counts_the_stock_bare_model_exactly(model_type, arch):
    fam, config = FAMILIES[model_type], CONFIGS[model_type]()
    model = AutoModel.from_config(fam.with_arch(config, arch), **fam.bare_kwargs())
    assert count_params(config, arch).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_attention_relations_read_the_familys_query_key_value(model_type):
    """Every representation term is 0 for a copy of the teacher, and the relations see the last layer's Q/K/V."""
    fam, teacher = FAMILIES[model_type], _teacher(model_type)
    copy = AutoModelForMaskedLM.from_config(teacher.config).eval()
    copy.load_state_dict(teacher.state_dict())
    q, k, v = fam.qkv_modules(teacher, 2)
    assert q.out_features == k.out_features == v.out_features == 32
    distiller = Distiller(copy, teacher.config, RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0), None).eval()
    ids, mask = _ids()
    with torch.no_grad():
        mine, theirs = distiller(ids, mask), distiller.teacher_views(teacher.base_model, ids, mask)
        terms = distiller.terms(mine, theirs, mask)
    assert set(terms) == {"hidden_mse", "attn_kl"} and all(abs(float(t)) < 1e-6 for t in terms.values())
    assert mine.qkv[0][0].shape == (3, 12, 32)


def test_positions_and_refusals():
    assert FAMILIES["roberta"].position_limit(CONFIGS["roberta"]()) == P == FAMILIES["mpnet"].position_limit(CONFIGS["mpnet"]())
    assert FAMILIES["bert"].position_limit(CONFIGS["bert"]()) == P == FAMILIES["distilbert"].position_limit(CONFIGS["distilbert"]())
    assert config_arch(CONFIGS["bert"]()) == FULL and family("roberta").name == "RoBERTa"
    with pytest.raises(BortError, match="^'x' is a 'deberta-v2' model; bort works with the BERT, RoBERTa, XLM-RoBERTa, ELECTRA, MPNet "
                                        "and DistilBERT families$"):
        family("deberta-v2", "'x'")
