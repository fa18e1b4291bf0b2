"""Hostile inputs (issue 13): damaged or pickled weights, mixed or non-UTF-8 predict input, a corrupted run
store, malformed config.json and export.json, remote-code config fields, a single-label training split.

Each refusal is exit status 2 with one line ``bort: error: …`` on stderr, no traceback, and nothing
half-written left behind. The models are the conftest's tiny ⟨2,4,64,128⟩ BERTs.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import subprocess

import pytest
import torch
from conftest import SEQ_LEN, bert_config
from transformers import BertForSequenceClassification

from bort.arch import Arch
from bort.atomic import LOCK
from bort.cli import main
from bort.data.corpus import load_corpus
from bort.errors import BortError
from bort.extract.store import RunStore
from bort.finetune.selection import select_size
from bort.models.folder import save_model_folder
from bort.models.loading import REMOTE_CODE_FIELDS, read_config
from bort.models.student import student_config
from bort.models.teacher import load_teacher
from bort.shared import MANIFEST
from bort.teacher.prepare import HeadConfig, prepare_teacher

REMOTE = {"auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}, "trust_remote_code": True,
          "custom_pipelines": {"evil": {"impl": "evil.Pipeline"}}}
OUTPUT_FILES = {"config.json", "model.safetensors", "pytorch_model.bin", "model.onnx", "export.json", "eval.json", "bench.json", "result.json"}


def one_line(code: int, err: str, *needles: str) -> str:
    """Assert the one-line error contract and return the line."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bort: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def refused(capsys, argv: list[str], *needles: str) -> str:
    """Run ``bort ARGV`` in process; it must be refused in one line holding ``needles``, printing nothing on stdout."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == ""
    return one_line(code, err, *needles)


def nothing_half_written(root: pathlib.Path, out: str = "out") -> None:
    """No output file of any verb in ``root/out``, and no hidden temporary anywhere under ``root`` (its inputs included)."""
    assert not [p for p in (root / out).rglob("*") if p.name in OUTPUT_FILES]
    assert not [p for p in root.rglob(".*") if p.name not in (LOCK, MANIFEST)]  # an export holds its manifest


def write_sst2(folder: pathlib.Path, labels=(0, 1)) -> pathlib.Path:
    """An SST-2-format task folder whose training labels cycle through ``labels``."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["good day", "bad film", "great fun", "awful plot", "happy end", "sad story"]
    train = "".join(f"{words[i % 6]} {i}\t{labels[i % len(labels)]}\n" for i in range(16))
    (folder / "train.tsv").write_text("sentence\tlabel\n" + train, encoding="utf-8")
    (folder / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{w}\t{i % 2}\n" for i, w in enumerate(words)), encoding="utf-8")
    return folder


def finetune_args(model, data, out) -> list:
    """A one-step ``bort finetune`` on glue/sst2."""
    return ["finetune", "--model", model, "--task", "glue/sst2", "--data", data, "--out", out, "--steps", "1", "--batch-size", "4",
            "--max-seq-len", "32", "--device", "cpu", "--bf16", "off", "--no-progress"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, bert_tokenizer) -> pathlib.Path:
    """A random-weight tiny BERT classifier for glue/sst2, saved as `bort finetune` would."""
    config = bert_config(len(bert_tokenizer))
    config.num_labels, config.id2label, config.label2id = 2, {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    config.bort_task, config.bort_max_seq_len = "glue/sst2", 32
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    BertForSequenceClassification(config).save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def export(tmp_path_factory, classifier) -> pathlib.Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", "--model", str(classifier), "--out", str(out)]) == 0
    return out


# 1. Damaged or pickled weights, in every verb that loads a model.

class _Payload:
    """Pickles as a call of ``Path.touch(marker)``: a file appears if anyone ever unpickles it with code allowed."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _truncated(folder: pathlib.Path) -> None:
    os.truncate(folder / "model.safetensors", 100_000)


def _pickle_with_code(folder: pathlib.Path) -> None:
    (folder / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": _Payload(folder.parent / "PAYLOAD_RAN")}, folder / "pytorch_model.bin")


def _raw_pickle_with_code(folder: pathlib.Path) -> None:
    """A plain pickle (no zip), as torch.save wrote before 1.6: torch's weights-only reader warns about its protocol."""
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"bert.pooler.dense.bias": _Payload(folder.parent / "PAYLOAD_RAN")}, protocol=4))


def _garbage_bin(folder: pathlib.Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(bytes(range(256)) * 40)


def _list_bin(folder: pathlib.Path) -> None:
    (folder / "model.safetensors").unlink()
    torch.save([torch.zeros(2)], folder / "pytorch_model.bin")


DAMAGE = {  # how the copy is damaged, and the file the error must name
    "truncated-safetensors": (_truncated, "model.safetensors"), "pickle-with-code": (_pickle_with_code, "pytorch_model.bin"),
    "raw-pickle-with-code": (_raw_pickle_with_code, "pytorch_model.bin"), "garbage-bin": (_garbage_bin, "pytorch_model.bin"),
    "list-bin": (_list_bin, "pytorch_model.bin"),
}
VERBS = {
    "export": lambda m, t: ["export", "--model", m, "--out", t / "out"],
    "predict": lambda m, t: ["predict", "--model", m, "--input", t / "data" / "dev.tsv"],
    "evaluate": lambda m, t: ["evaluate", "--model", m, "--task", "glue/sst2", "--data", t / "data"],
    "finetune": lambda m, t: finetune_args(m, t / "data", t / "out"),
    "bench": lambda m, t: ["bench", "--models", m, "--batch", "1", "--seq", "16", "--out", t / "out", "--warmup", "0", "--rounds", "1", "--runs", "1"],
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("verb", [*VERBS, "extract"])
def test_damaged_weights_are_one_line(verb, damage, classifier, tmp_path, capsys, extract_args):
    model = tmp_path / "model"
    shutil.copytree(classifier, model)
    spoil, file = DAMAGE[damage]
    spoil(model)
    write_sst2(tmp_path / "data")
    argv = extract_args(model, tmp_path / "out") if verb == "extract" else VERBS[verb](model, tmp_path)
    line = refused(capsys, argv, "cannot read the checkpoint", str(model / file), "re-save the model with save_pretrained")
    if "pickle" in damage:
        assert "not a weights-only PyTorch checkpoint" in line
    assert not (tmp_path / "PAYLOAD_RAN").exists()  # weights_only=True: the pickle's code never ran
    nothing_half_written(tmp_path)


def test_loaders_warnings_stay_off_stderr(classifier, tmp_path, bort_cmd):
    """Outside pytest (which records warnings), torch's warning about a plain pickle's protocol would be a second line."""
    model = tmp_path / "model"
    shutil.copytree(classifier, model)
    _raw_pickle_with_code(model)
    p = subprocess.run([*bort_cmd, "export", "--model", str(model), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    one_line(p.returncode, p.stderr, str(model / "pytorch_model.bin"), "not a weights-only PyTorch checkpoint")
    assert not (tmp_path / "PAYLOAD_RAN").exists()
    nothing_half_written(tmp_path)


def test_damaged_onnx_graph_is_one_line(export, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    (broken / "model.onnx").write_bytes(b"")  # ONNX Runtime: InvalidArgument, not a RuntimeError
    (tmp_path / "in.txt").write_text("good day\n", encoding="utf-8")
    refused(capsys, ["predict", "--model", broken, "--input", tmp_path / "in.txt"], str(broken / "model.onnx"), "re-export the model")
    refused(capsys, ["bench", "--models", broken, "--seq", "16", "--out", tmp_path / "out"], str(broken / "model.onnx"))
    nothing_half_written(tmp_path)


# 2-3. `bort predict`'s input: mixed single texts and pairs, non-UTF-8 bytes.

@pytest.mark.parametrize(("name", "text", "where"), [
    ("in.txt", "short\na much longer first segment\tand a second one\n", "in.txt:2: a pair, but"),
    ("in.txt", "a much longer first segment\tand a second one\n\nshort\n", "in.txt:3: a single text, but"),
    ("in.jsonl", '{"text": "a pair", "text_pair": "of texts"}\n{"text": "one text"}\n', "in.jsonl:2: a single text, but"),
])
def test_predict_refuses_mixed_singles_and_pairs(name, text, where, export, tmp_path, capsys):
    (tmp_path / name).write_text(text, encoding="utf-8")
    refused(capsys, ["predict", "--model", export, "--input", tmp_path / name], where, "every one a pair")


def test_predict_non_utf8_stdin_is_one_line_like_a_file(export, tmp_path, bort_cmd):
    latin1 = b"caf\xe9\n"
    (tmp_path / "in.txt").write_bytes(latin1)
    lines = {}
    for source, stdin in ((str(tmp_path / "in.txt"), None), ("-", latin1)):
        p = subprocess.run([*bort_cmd, "predict", "--model", str(export), "--input", source], input=stdin, capture_output=True, timeout=120)
        assert p.stdout == b""
        lines[source] = one_line(p.returncode, p.stderr.decode(), "is not UTF-8 text", "iconv")
    assert lines["-"] == lines[str(tmp_path / "in.txt")].replace(str(tmp_path / "in.txt"), "<stdin>")


# 4. A run store with corrupted pages.

def _corrupted_store(folder: pathlib.Path) -> pathlib.Path:
    """A store with a result whose pages after the first (the schema) are overwritten."""
    store = RunStore(folder)
    store.check_settings({"teacher": "t"})
    store.put_trial("1,2,32,64", "theta", 0.5, 1.0)
    store.put_latency("1,2,32,64", "settings", "cpu", 1.0)
    store.close()
    file = folder / RunStore.FILENAME
    data = bytearray(file.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    file.write_bytes(bytes(data))
    return file


@pytest.mark.parametrize("operation", [
    lambda s: s.check_settings({"teacher": "t"}), lambda s: s.trial("1,2,32,64", "theta"), lambda s: s.put_trial("1,2,32,64", "t2", 0.1, 1.0),
    lambda s: s.latency("1,2,32,64", "settings"), lambda s: s.put_latency("1,1,32,64", "settings", "cpu", 1.0),
    lambda s: s.latency_device("settings"), lambda s: s.trials(),
], ids=["check_settings", "trial", "put_trial", "latency", "put_latency", "latency_device", "trials"])
def test_every_store_operation_names_a_corrupted_store(operation, tmp_path):
    file = _corrupted_store(tmp_path)
    with pytest.raises(BortError, match="cannot be used") as err:
        operation(RunStore(tmp_path))
    assert str(file) in str(err.value) and "move it away" in str(err.value) and "\n" not in str(err.value)


def test_extract_on_a_corrupted_store_is_one_line(tmp_path, capsys, extract_args, bert_teacher):
    file = _corrupted_store(tmp_path / "run")
    refused(capsys, extract_args(bert_teacher, tmp_path / "run"), str(file), "malformed", "--out")
    nothing_half_written(tmp_path, "run")


# 5. Small tracebacks: --threads 0, malformed config.json and export.json.

def test_predict_threads_zero(export, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("good day\n", encoding="utf-8")
    refused(capsys, ["predict", "--model", export, "--input", tmp_path / "in.txt", "--threads", "0"], "--threads must be at least 1")


@pytest.mark.parametrize(("text", "needle"), [
    ("[1, 2]", "holds a JSON list, not an object"), ('"bert"', "holds a JSON str"), ("{not json", "cannot parse"),
    ('{"model_type": "bert", "hidden_size": "wide"}', "has a bad setting"), ('{"model_type": "bert", "id2label": 5}', "has a bad setting"),
])
@pytest.mark.parametrize("verb", ["export", "predict", "finetune"])
def test_malformed_config_json(verb, text, needle, classifier, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(classifier, model)
    (model / "config.json").write_text(text, encoding="utf-8")
    write_sst2(tmp_path / "data")
    refused(capsys, VERBS[verb](model, tmp_path), str(model / "config.json"), needle, "re-save the model")
    nothing_half_written(tmp_path)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda info: {**info, "head": "token_classification"}, "'head': 'token_classification'"),
    (lambda info: {k: v for k, v in info.items() if k != "quantize"}, "'quantize': None"),
    (lambda info: {k: v for k, v in info.items() if k != "head"}, "'head': None"),
    (lambda info: [info], "got a JSON list"),
    (lambda info: "{truncated", "cannot parse"),
])
@pytest.mark.parametrize("verb", ["predict", "bench"])
def test_malformed_export_json(verb, edit, needle, export, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    info = edit(json.loads((broken / "export.json").read_text()))
    (broken / "export.json").write_text(info if isinstance(info, str) else json.dumps(info), encoding="utf-8")
    write_sst2(tmp_path / "data")
    refused(capsys, VERBS[verb](broken, tmp_path), str(broken / "export.json"), needle, "re-export the model with `bort export`")
    nothing_half_written(tmp_path)


# 6. Remote-code config fields never reach an output.

def _with_remote_code(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**config, **REMOTE}), encoding="utf-8")
    return dst


def _remote_code_in(folder: pathlib.Path) -> list[str]:
    """Every remote-code field in any JSON file under ``folder``."""
    return [f"{p}: {k}" for p in folder.rglob("*.json") for k in REMOTE_CODE_FIELDS if f'"{k}"' in p.read_text(encoding="utf-8")]


def test_remote_code_fields_never_reach_an_output(tmp_path, bert_teacher_nohead, corpus_file, extract_args):
    """Through every stage, from a head-less teacher (so extract and pretrain also prepare its MLM head)."""
    teacher = _with_remote_code(bert_teacher_nohead, tmp_path / "teacher")
    assert _remote_code_in(teacher)  # the check below sees them where they are
    assert main(extract_args(teacher, tmp_path / "extract", "--epsilon", "20", "--latency", "flops")) == 0
    assert main(["pretrain", "--teacher", str(teacher), "--out", str(tmp_path / "pretrain"), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                 "--seq-len", str(SEQ_LEN), "--steps", "2", "--batch-size", "4", "--eval-sequences", "8", "--head-steps", "2",
                 "--bf16", "off", "--device", "cpu", "--no-progress"]) == 0
    write_sst2(tmp_path / "data")
    assert main([str(a) for a in finetune_args(teacher, tmp_path / "data", tmp_path / "finetune")]) == 0
    finetuned = _with_remote_code(tmp_path / "finetune" / "model", tmp_path / "finetuned")  # export writes the config it reads, not the file
    assert main(["export", "--model", str(finetuned), "--out", str(tmp_path / "export")]) == 0
    for folder in ("extract/best", "extract/teacher_mlm", "pretrain/model", "pretrain/teacher_mlm", "finetune/model", "export"):
        assert (tmp_path / folder / "config.json").is_file(), folder
    for out in ("extract", "pretrain", "finetune", "export"):
        assert not _remote_code_in(tmp_path / out), out
    exported, source = (json.loads((tmp_path / f / "config.json").read_text()) for f in ("export", "finetune/model"))
    for key in ("id2label", "label2id", "bort_task", "bort_max_seq_len", "bort_head", "architectures", "hidden_size"):
        assert exported[key] == source[key], key


def test_read_config_and_student_config_strip_remote_code(tmp_path, bert_teacher):
    config = read_config(_with_remote_code(bert_teacher, tmp_path / "teacher"))
    assert not set(config.to_dict()) & set(REMOTE_CODE_FIELDS)
    for key, value in REMOTE.items():  # a config from elsewhere: student_config strips it too
        setattr(config, key, value)
    assert not set(student_config(config, Arch(1, 2, 32, 64)).to_dict()) & set(REMOTE_CODE_FIELDS)


def test_model_folders_are_saved_without_remote_code(tmp_path, bert_teacher_nohead, corpus_file):
    """The save points strip the fields from a model's own config, however the model was loaded."""
    teacher = load_teacher(bert_teacher_nohead)
    for key, value in REMOTE.items():
        setattr(teacher.model.config, key, value)
    (tmp_path / "saved").mkdir()
    save_model_folder(tmp_path / "saved", teacher.model, teacher.tokenizer)
    assert (tmp_path / "saved" / "config.json").is_file() and not _remote_code_in(tmp_path / "saved")
    for key, value in REMOTE.items():
        setattr(teacher.model.config, key, value)
    corpus = load_corpus(str(corpus_file), teacher.tokenizer, seq_len=SEQ_LEN)
    prepare_teacher(teacher, corpus, tmp_path / "prepared", HeadConfig(steps=2, batch_size=4, eval_sequences=8))
    assert (tmp_path / "prepared" / "config.json").is_file() and not _remote_code_in(tmp_path / "prepared")


# 7. A classification training split with a single label.

@pytest.mark.parametrize(("labels", "warned"), [((1,), True), ((0, 1), False)])
def test_single_label_training_split_warns_once(labels, warned, classifier, tmp_path, capsys):
    write_sst2(tmp_path / "data", labels)
    assert main([str(a) for a in finetune_args(classifier, tmp_path / "data", tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    if warned:
        trained = 16 - select_size(16, 0.1)  # less those held out to choose on
        assert len(warnings) == 1 and f"all {trained} training examples of glue/sst2 have the label 'positive'" in warnings[0]
        assert "will learn to predict only it" in warnings[0]
    else:
        assert warnings == []
    assert (tmp_path / "out" / "eval.json").is_file()  # training went on
