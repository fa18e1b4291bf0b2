"""Every verb on every family bort knows (issue 39): a tiny ``bort compress`` from each family's teacher (extract,
pretrain, fine-tune and distil, int8 export, scores, bench), then ``evaluate`` and ``predict`` on its int8 export, and the
student's folder loaded by the stock transformers classes."""

from __future__ import annotations

import json

import pytest
import test_hostile_inputs as hostile
from conftest import SEQ_LEN
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bort.cli import main
from bort.models.families import FAMILIES

TEACHERS = {"bert": "bert_teacher", "roberta": "roberta_teacher", "xlm-roberta": "xlmr_teacher", "electra": "electra_teacher", "mpnet": "mpnet_teacher",
            "distilbert": "distilbert_teacher"}


def test_every_family_is_run_here():
    assert set(FAMILIES) == set(TEACHERS)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(TEACHERS))
def test_every_verb_on_a_family(model_type, request, tmp_path, corpus_file, space_file, capsys):
    teacher = request.getfixturevalue(TEACHERS[model_type])
    data, out = hostile.write_sst2(tmp_path / "sst2"), tmp_path / "run"
    assert main(["compress", "--teacher", str(teacher), "--corpus", str(corpus_file), "--space", str(space_file), "--out", str(out),
                 "--seq-len", str(SEQ_LEN), "--latency", "flops", "--latency-seq", str(SEQ_LEN), "--min-speedup", "2", "--extract-steps", "2",
                 "--epsilon", "4", "--pretrain-steps", "2", "--pretrain-batch-size", "4", "--finetune-steps", "2", "--batch-size", "4",
                 "--max-seq-len", str(SEQ_LEN), "--augment", "1", "--transform", "pair-mix", "--bench-seq", str(SEQ_LEN), "--bench-rounds", "1",
                 "--bench-runs", "1", "--bench-warmup", "0", "--device", "cpu", "--no-progress", "--task", "glue/sst2", "--data", str(data)]) == 0
    report = json.loads((out / "compress.json").read_text())
    task = report["tasks"]["sst2"]
    assert 0 <= task["student_metric"] <= 1 and task["speedup_same_runtime"] > 0
    student = AutoModelForSequenceClassification.from_pretrained(task["student_folder"])
    assert student.config.model_type == model_type and AutoTokenizer.from_pretrained(task["student_folder"]) is not None
    capsys.readouterr()
    assert main(["evaluate", "--model", task["student_onnx"], "--data", str(data)]) == 0
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert metrics["accuracy"] == pytest.approx(task["student_metric"])  # the score compress reports is the export's
    (tmp_path / "in.txt").write_text("a good day\na bad film\n", encoding="utf-8")
    assert main(["predict", "--model", task["student_onnx"], "--input", str(tmp_path / "in.txt")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["label"] in ("negative", "positive") for r in rows)


@pytest.mark.slow
def test_an_mpnet_sentence_transformers_student_loads_in_sentence_transformers_and_embeds_as_predict_does(tmp_path, mpnet_teacher, corpus_file,
                                                                                                        capsys):
    """all-mpnet-base-v2's shape in small: a bare MPNet with mean pooling and normalisation; its student pretrained on
    sentences with the embedding term, exported int8 with the sentence output, and its embeddings read back three ways."""
    st = pytest.importorskip("sentence_transformers")
    from transformers import AutoModel

    teacher = tmp_path / "st"
    AutoModel.from_pretrained(mpnet_teacher, add_pooling_layer=False).save_pretrained(teacher)
    AutoTokenizer.from_pretrained(mpnet_teacher).save_pretrained(teacher)
    (teacher / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (teacher / "1_Pooling").mkdir()
    (teacher / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True}))
    config = json.loads((teacher / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**config, "architectures": ["MPNetForMaskedLM"]}))  # as all-mpnet-base-v2's says
    assert main(["export", "--model", str(teacher), "--out", str(tmp_path / "teacher-onnx")]) == 0  # read as the encoder it holds
    out, onnx = tmp_path / "student", tmp_path / "student-int8"
    assert main(["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,4,64,128", "--init", "teacher",
                 "--inputs", "sentences", "--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-embed", "1", "--seq-len", str(SEQ_LEN), "--steps", "2",
                 "--batch-size", "4", "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress"]) == 0
    texts = ["a good day", "the bad film was long"]
    mine = st.SentenceTransformer(str(out / "model"), device="cpu").encode(texts)  # the run's model
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "in.txt"), "--embed"]) == 0
    rows = [json.loads(line)["embedding"] for line in capsys.readouterr().out.splitlines()]
    assert mine.shape == (2, 64) and abs(mine - rows).max() < 1e-5  # PyTorch: the same pooling and normalisation
    assert main(["export", "--model", str(out), "--out", str(onnx)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(onnx), "--input", str(tmp_path / "in.txt"), "--embed"]) == 0
    exported = [json.loads(line)["embedding"] for line in capsys.readouterr().out.splitlines()]
    assert abs(mine - exported).max() < 1e-4  # the fp32 export's sentence output
    assert main(["export", "--model", str(out), "--out", str(tmp_path / "int8"), "--quantize", "int8"]) == 0
    check = json.loads((tmp_path / "int8" / "export.json").read_text())["check"]
    assert check["gated_on"] == "sentence_embedding" and check["error"] == check["sentence_embedding"]["error"] <= 0.2


@pytest.mark.slow
def test_an_mpnet_teacher_without_a_head_gets_one(tmp_path, mpnet_teacher, corpus_file):
    """all-mpnet-base-v2 ships no masked-LM head: `bort teacher prepare` trains MPNet's own, which the stock class loads."""
    from transformers import AutoModel, AutoModelForMaskedLM

    from bort.models.loading import has_mlm_head

    bare = tmp_path / "bare"
    AutoModel.from_pretrained(mpnet_teacher, add_pooling_layer=False).save_pretrained(bare)
    AutoTokenizer.from_pretrained(mpnet_teacher).save_pretrained(bare)
    out = tmp_path / "prepared"
    assert not has_mlm_head(bare)
    assert main(["teacher", "prepare", "--teacher", str(bare), "--out", str(out), "--corpus", str(corpus_file), "--seq-len", str(SEQ_LEN),
                 "--steps", "3", "--batch-size", "4", "--device", "cpu"]) == 0
    report = json.loads((out / "bort_teacher.json").read_text())
    assert has_mlm_head(out) and type(AutoModelForMaskedLM.from_pretrained(out)).__name__ == "MPNetForMaskedLM"
    assert 0 <= report["mlm_accuracy_before"] <= 1 and 0 <= report["mlm_accuracy"] <= 1


@pytest.mark.slow
def test_the_int8_export_keeps_the_familys_float_products_and_gates_embeddings(tmp_path, mpnet_teacher):
    """MPNet's FFN down-projections stay float in int8 (families.py: int8_float); the other weight products are int8."""
    import onnx

    out = tmp_path / "int8"
    assert main(["export", "--model", str(mpnet_teacher), "--out", str(out), "--quantize", "int8"]) == 0
    nodes = onnx.load(str(out / "model.onnx")).graph.node
    down = [n for n in nodes if "output/dense" in n.name and n.op_type.startswith("MatMul")]
    assert len(down) == 2 and all(n.op_type == "MatMul" for n in down)  # one per layer, float
    assert sum(n.op_type == "MatMulInteger" for n in nodes) >= 2 * 5  # q, k, v, o and the up-projection of each layer
    check = json.loads((out / "export.json").read_text())["check"]
    assert check["gated_on"] == "outputs" and check["error"] <= check["tolerance"]  # no sentence output here: the hidden states


@pytest.mark.slow
def test_an_electra_discriminator_is_a_teacher_as_its_encoder(tmp_path, bert_tokenizer, corpus_file, capsys):
    """ELECTRA ships discriminators (ElectraForPreTraining: no masked-LM head): pretraining reads it as its encoder, and its
    export is the encoder's."""
    import torch
    from transformers import ElectraConfig, ElectraForPreTraining

    teacher = tmp_path / "disc"
    torch.manual_seed(0)
    ElectraForPreTraining(ElectraConfig(vocab_size=len(bert_tokenizer), num_hidden_layers=2, num_attention_heads=4, hidden_size=64,
                                        intermediate_size=128, embedding_size=32, max_position_embeddings=64)).save_pretrained(teacher)
    bert_tokenizer.save_pretrained(teacher)
    assert main(["pretrain", "--teacher", str(teacher), "--corpus", str(corpus_file), "--arch", "1,2,32,64", "--init", "teacher", "--alpha-mlm", "0",
                 "--alpha-kd", "0", "--alpha-hidden", "1", "--seq-len", str(SEQ_LEN), "--steps", "2", "--batch-size", "4", "--eval-sequences", "8",
                 "--out", str(tmp_path / "student"), "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "student" / "pretrain.json").read_text())["heldout"]["hidden_mse"] > 0
    assert main(["export", "--model", str(teacher), "--out", str(tmp_path / "onnx"), "--quantize", "int8"]) == 0
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["head"] == "encoder"
