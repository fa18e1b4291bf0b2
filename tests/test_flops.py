"""î in ``flops`` mode: the analytic count against PyTorch's own FLOP counter on the built encoder."""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel, BertConfig, RobertaConfig

from bort.arch import Arch
from bort.errors import BortError
from bort.models.student import student_config
from bort.surrogates import latency
from bort.surrogates.latency import LatencySettings, depth_anchors, flops, interpolate_depths, measure_latency, time_calls


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


def test_a_timing_that_did_not_get_its_core_is_reported_once(monkeypatch, capsys):
    """A call that waits instead of computing, as a preempted one does, gets a share of the core near 0."""
    monkeypatch.setattr(latency, "_contention_reported", False)
    latency.report_contention(0.95)
    assert capsys.readouterr().err == ""
    time_calls(lambda: time.sleep(0.01), LatencySettings(runs=3, warmup=0))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "of a core per thread" in err[0] and "idle machine" in err[0]
    latency.report_contention(0.1)
    assert capsys.readouterr().err == ""  # once per process


@pytest.mark.parametrize("runtime", ["onnx-fp32", "onnx-int8"])
def test_onnx_latency_is_timed_on_an_export_that_is_then_removed(tmp_path, runtime):
    from bort.bench.timing import measure_onnx_latency

    config = BertConfig(vocab_size=100, max_position_embeddings=16)
    settings = LatencySettings(seq=8, runs=2, warmup=1, runtime=runtime)
    medians = measure_onnx_latency(config, Arch(1, 2, 32, 64), settings, work=tmp_path, repeats=2)
    assert len(medians) == 2 and all(m > 0 for m in medians)
    assert list(tmp_path.iterdir()) == []  # the export was a temporary


@pytest.mark.parametrize(("runtime", "head"), [("torch", "encoder"), ("onnx-int8", "classification"), ("onnx-fp32", "multiple_choice")])
def test_side_by_side_times_each_shape_in_rotating_rounds(tmp_path, monkeypatch, runtime, head):
    import bort.bench.timing as lat

    order, calls = [], {}
    real = lat.time_calls

    def spy(call, settings, **kw):  # which shape each timing was, by the call's identity
        order.append(calls.setdefault(id(call), len(calls)))
        return real(call, settings, **kw)

    monkeypatch.setattr(lat, "time_calls", spy)
    config = BertConfig(vocab_size=100, max_position_embeddings=16)
    settings = LatencySettings(seq=8, runs=2, warmup=1, runtime=runtime, head=head)
    archs = [Arch(2, 2, 32, 64), Arch(1, 2, 16, 32), Arch(1, 2, 32, 32)]
    ms = lat.time_side_by_side(config, archs, settings, work=tmp_path, rounds=3)
    assert len(ms) == 3 and all(m > 0 for m in ms)
    assert order == [0, 1, 2, 1, 2, 0, 2, 0, 1]  # each round starts one shape later
    assert list(tmp_path.iterdir()) == []  # the exports were temporaries


def test_a_task_head_is_timed_as_it_ships():
    from transformers import BertForMultipleChoice, BertForSequenceClassification, BertModel

    from bort.models.student import random_encoder

    config = BertConfig(vocab_size=100, max_position_embeddings=16)
    assert type(random_encoder(config, Arch(1, 2, 32, 64))) is BertModel and random_encoder(config, Arch(1, 2, 32, 64)).pooler is None
    assert type(random_encoder(config, Arch(1, 2, 32, 64), head="classification")) is BertForSequenceClassification
    assert type(random_encoder(config, Arch(1, 2, 32, 64), head="multiple_choice")) is BertForMultipleChoice
    assert measure_latency(config, Arch(1, 2, 32, 64), LatencySettings(seq=8, runs=1, warmup=0, head="multiple_choice"))[0] > 0
    # The default head keeps the cache key of stores written before heads were timed; another head changes it.
    assert "head" not in LatencySettings().key and "head=classification" in LatencySettings(head="classification").key


def test_depths_are_interpolated_exactly_between_each_widths_anchors():
    archs = [Arch(d, a, h, i) for d in (1, 2, 3, 5) for a, h, i in ((2, 32, 64), (4, 64, 128))] + [Arch(2, 2, 16, 32)]
    anchors = depth_anchors(archs)
    assert set(anchors) == {Arch(d, a, h, i) for d in (1, 5) for a, h, i in ((2, 32, 64), (4, 64, 128))} | {Arch(2, 2, 16, 32)}

    def cost(a: Arch) -> float:  # a fixed part plus D equal layers, different per width
        return 0.3 + a.H / 100 + a.D * (a.H * a.I) / 1e4

    got = interpolate_depths(archs, {a: cost(a) for a in anchors})
    assert set(got) == set(archs)
    assert all(got[a] == pytest.approx(cost(a)) for a in archs)


@pytest.mark.parametrize("kwargs", [{"mode": "wall"}, {"dtype": "int8"}, {"runs": 0}, {"seq": 0}, {"warmup": -1}, {"runtime": "tensorrt"},
                                    {"runtime": "onnx-int8", "dtype": "bfloat16"}, {"runtime": "onnx-fp32", "device": "cuda:0"},
                                    {"head": "masked_lm"}])
def test_latency_settings_validation(kwargs):
    with pytest.raises(BortError):
        LatencySettings(**kwargs)


def test_runtime_names():
    assert LatencySettings().runtime_name == "PyTorch eager float32"
    assert LatencySettings(runtime="onnx-int8").runtime_name == "ONNX Runtime int8"
    assert LatencySettings(mode="flops").runtime_name == "FLOPs"
    assert LatencySettings(runtime="onnx-int8", head="multiple_choice").runtime_name == "ONNX Runtime int8, multiple choice head"
    assert "ONNX Runtime int8, " in LatencySettings(runtime="onnx-int8").device_name()
