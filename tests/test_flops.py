"""î in ``flops`` mode: the analytic count against PyTorch's own FLOP counter on the built encoder."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel, BertConfig, RobertaConfig

from bort.arch import Arch
from bort.errors import BortError
from bort.models.student import student_config
from bort.surrogates.latency import LatencySettings, flops, measure_latency


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize(("arch", "seq", "batch"), [(Arch(2, 4, 64, 128), 16, 2), (Arch(1, 2, 32, 96), 24, 1), (Arch(3, 8, 64, 48), 8, 3)], ids=str)
def test_flops_equals_counted_matmuls(family, arch, seq, batch):
    """Every matrix product of one forward (eager attention), as counted by FlopCounterMode."""
    base = BertConfig(vocab_size=200, max_position_embeddings=32) if family == "bert" else RobertaConfig(vocab_size=200, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1)
    model = AutoModel.from_config(student_config(base, arch), add_pooling_layer=False, attn_implementation="eager").eval()
    ids = torch.randint(5, 200, (batch, seq))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids)
    assert flops(arch, seq=seq, batch=batch) == counter.get_total_flops()


def test_measured_latency_returns_one_median_per_repeat():
    config = BertConfig(vocab_size=100, max_position_embeddings=16)
    settings = LatencySettings(seq=8, runs=2, warmup=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        medians = measure_latency(config, Arch(1, 2, 32, 32), settings, repeats=3)
        assert torch.get_num_threads() == 2  # the measurement's own thread count is undone afterwards
    finally:
        torch.set_num_threads(before)
    assert len(medians) == 3 and all(m > 0 for m in medians)


@pytest.mark.parametrize("kwargs", [{"mode": "wall"}, {"dtype": "int8"}, {"runs": 0}, {"seq": 0}, {"warmup": -1}])
def test_latency_settings_validation(kwargs):
    with pytest.raises(BortError):
        LatencySettings(**kwargs)
