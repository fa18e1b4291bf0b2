"""``bort push`` and ``--push-to-hub`` (issue 40): only a folder's model files go up, in one commit, to a repository created
if need be; without a token, or when the Hub refuses, one line and nothing sent. ``huggingface_hub.HfApi`` is replaced by a
recorder: nothing here reaches the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
from test_objectives import MODULES, POOLING

from bort.cli import main
from bort.errors import BortError
from bort.push import HubOptions, PushConfig, files_to_push, push


class FakeApi:
    """Records the calls ``push`` makes; ``fail`` makes create_repo raise it."""

    calls: list = []
    fail: Exception | None = None

    def create_repo(self, repo_id, *, private=None, exist_ok=False):
        if FakeApi.fail:
            raise FakeApi.fail
        FakeApi.calls.append(("repo", repo_id, private, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, *, branch, exist_ok=False):
        FakeApi.calls.append(("branch", repo_id, branch, exist_ok))

    def create_commit(self, repo_id, operations, *, commit_message, revision=None):
        FakeApi.calls.append(("commit", repo_id, sorted(op.path_in_repo for op in operations), revision,
                              {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}))
        return type("Info", (), {"oid": "abc123"})()


@pytest.fixture
def hub(monkeypatch):
    FakeApi.calls, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    return FakeApi


@pytest.fixture
def run_folder(tmp_path, bert_teacher) -> Path:
    """A model folder as a stage leaves it: the model beside its checkpoint, logs, settings and TensorBoard events."""
    folder = tmp_path / "ft"
    shutil.copytree(bert_teacher, folder)
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n# card\n")
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "model.safetensors").write_bytes(b"x" * 10)
    (folder / "runs").mkdir()
    (folder / "runs" / "events.out.tfevents.1").write_bytes(b"e")
    for name in ("log.jsonl", "finetune.json", "finetune_settings.json", "eval.json", ".lock"):
        (folder / name).write_text("{}")
    return folder


def test_only_the_model_files_are_pushed(run_folder, tmp_path):
    assert files_to_push(run_folder) == ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    st = tmp_path / "st"  # a sentence-transformers folder: its files and module folders too
    shutil.copytree(run_folder, st)
    (st / "modules.json").write_text(json.dumps(MODULES))
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps(POOLING))
    assert set(files_to_push(st)) - set(files_to_push(run_folder)) == {"modules.json", "1_Pooling/config.json"}
    with pytest.raises(BortError, match="holds no model"):
        files_to_push(run_folder / "runs")
    run = tmp_path / "run"  # a run folder of today's layout: its model in model/, pushed as the repository's root
    (run / "model").mkdir(parents=True)
    for name in files_to_push(run_folder):
        (run / "model" / name).write_bytes((run_folder / name).read_bytes())
    (run / "finetune.json").write_text("{}")
    assert files_to_push(run) == files_to_push(run_folder)


def test_push_creates_the_repo_and_branch_and_commits_the_files_once(run_folder, hub, capsys):
    assert main(["push", str(run_folder), "me/tiny", "--private", "--revision", "v1"]) == 0
    assert [c[0] for c in hub.calls] == ["repo", "branch", "commit"]
    assert hub.calls[0] == ("repo", "me/tiny", True, True) and hub.calls[1] == ("branch", "me/tiny", "v1", True)
    _, repo, names, revision, contents = hub.calls[2]
    assert (repo, revision, names) == ("me/tiny", "v1", files_to_push(run_folder))
    assert contents["model.safetensors"] == (run_folder / "model.safetensors").read_bytes()  # the model, not the checkpoint's
    out = capsys.readouterr().out
    assert out.startswith(f"pushed 5 files of {run_folder} to https://huggingface.co/me/tiny")


def test_without_a_token_or_a_network_the_push_is_one_line(run_folder, hub, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(run_folder), "me/tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Hugging Face token: run `hf auth login`" in err and hub.calls == []
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    hub.fail = ConnectionError("Failed to resolve 'huggingface.co'\nmore")
    assert main(["push", str(run_folder), "me/tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot push to me/tiny on the Hugging Face Hub (Failed to resolve 'huggingface.co')" in err
    for bad in ("a/b/c", "has space", "-lead"):
        with pytest.raises(BortError, match="must be a Hub repository name"):
            PushConfig(run_folder, bad)


def test_push_to_hub_after_export_and_refused_before_it_without_a_token(tmp_path, bert_teacher, hub, monkeypatch, capsys):
    out = tmp_path / "onnx"
    argv = ["export", "--model", str(bert_teacher), "--out", str(out), "--no-progress", "--push-to-hub", "me/tiny-onnx"]
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(argv) == 2 and not out.exists()  # refused before any work
    assert "no Hugging Face token" in capsys.readouterr().err
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    assert main(argv) == 0
    _, repo, names, _, _ = hub.calls[-1]
    assert repo == "me/tiny-onnx" and names == files_to_push(out) and {"model.onnx", "export.json", "README.md"} <= set(names)


def test_compress_pushes_each_student_and_its_int8_export():
    one = HubOptions(push_to_hub="me/s").students({"glue/rte": ("R/student", "R/int8")})
    assert [(str(c.folder), c.repo_id) for c in one] == [("R/student", "me/s"), ("R/int8", "me/s-int8")]
    two = HubOptions(push_to_hub="me/s", hub_private=True).students({"glue/rte": ("a", "b"), "glue/sst2": ("c", "d")})
    assert [c.repo_id for c in two] == ["me/s-rte", "me/s-rte-int8", "me/s-sst2", "me/s-sst2-int8"] and all(c.private for c in two)
    assert HubOptions().students({"": ("a", "b")}) == []
    with pytest.raises(BortError, match="--push-to-hub must be a Hub repository name"):
        HubOptions(push_to_hub="no good")


def test_push_api(run_folder, hub):
    result = push(PushConfig(run_folder, "me/tiny"))
    assert (result.repo_id, result.url, result.commit, result.files) == ("me/tiny", "https://huggingface.co/me/tiny", "abc123",
                                                                         files_to_push(run_folder))
    assert [c[0] for c in hub.calls] == ["repo", "commit"]  # no branch without --revision
