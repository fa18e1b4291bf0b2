"""Issue 13's data-safety defects, each reproduced and now refused or fixed.

- bort never deletes or overwrites what it did not write: a foreign non-empty ``--out``, the input
  model's folder (or one inside or around it) and a file are refused; its own output is rewritten
  file by file;
- one process per output folder: a second is refused naming the PID; a lock left by kill -9 is taken over;
- the temporaries of a killed run are removed by the next run, a live process's never;
- after a divergence, ``checkpoint/good`` holds the state from before the smoothed loss began to rise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SEQ_LEN, reaped
from safetensors.torch import load_file

import bort.pretrain.recipe as distill_recipe
from bort.atomic import LOCK, FolderLock, atomic_write_text, is_temp, remove_leftovers, temp_dir
from bort.cli import main
from bort.errors import BortError, TrainingDiverged
from bort.shared import MANIFEST, check_out
from bort.training.checkpoint import GOOD, good_state
from bort.training.loop import OptimConfig, TrainState, build_optimizer, train
from bort.training.run import RunFolder


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) → the hash of its bytes; folders end with '/'."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel + "/" if p.is_dir() else rel] = "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_refused(code: int, err: str, *words: str) -> str:
    """Exit status 2 and exactly one stderr line ``bort: error: …`` holding ``words``, with no traceback."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bort: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def hidden(folder: Path) -> list[str]:
    """Names starting with a dot in ``folder``: bort's lock file and temporaries, if any were left."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture
def model(tmp_path, bert_teacher) -> Path:
    """A private copy of the tiny BERT teacher (a run that wrongly writes into it cannot harm other tests)."""
    return Path(shutil.copytree(bert_teacher, tmp_path / "models" / "M"))


# ------------------------------------------------------------------ never delete what bort did not write


def test_export_refuses_a_folder_it_did_not_write(tmp_path, model, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    before = tree(tmp_path)
    line = assert_refused(main(["export", "--model", str(model), "--out", str(out)]), capsys.readouterr().err,
                          str(out), "has no export.json", "`bort export`", "new or empty folder")
    assert "notes.txt" not in line
    assert tree(tmp_path) == before  # notes.txt kept, the source intact, no lock or temporary left


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_export_refuses_the_input_folder(tmp_path, model, capsys, where):
    out = {"same": model, "inside": model / "onnx", "around": model.parent}[where]
    before = tree(tmp_path)
    assert_refused(main(["export", "--model", str(model), "--out", str(out)]), capsys.readouterr().err, "the input folder", str(out))
    assert tree(tmp_path) == before  # the source model intact, nothing made inside it


def test_export_refuses_a_file(tmp_path, model, capsys):
    out = tmp_path / "x"
    out.write_text("keep")
    before = tree(tmp_path)
    assert_refused(main(["export", "--model", str(model), "--out", str(out)]), capsys.readouterr().err, "is a file")
    assert tree(tmp_path) == before and out.read_text() == "keep"  # no folder in its place, no hidden .x.old


def test_export_rewrites_its_own_folder_whole(tmp_path, model, capsys):
    out = tmp_path / "x"
    assert main(["export", "--model", str(model), "--out", str(out)]) == 0
    assert json.loads((out / "export.json").read_text())["quantize"] == "none"
    (out / "notes.txt").write_text("keep")
    fp32 = (out / "model.onnx").read_bytes()
    source, before = tree(model), tree(tmp_path)
    argv = ["export", "--model", str(model), "--out", str(out), "--quantize", "int8"]
    assert_refused(main(argv), capsys.readouterr().err, "holds 'notes.txt'", "move it out")  # a rewrite would lose the user's file
    assert tree(tmp_path) == before
    (out / "notes.txt").unlink()
    assert main(argv) == 0
    assert json.loads((out / "export.json").read_text())["quantize"] == "int8" and (out / "model.onnx").read_bytes() != fp32
    assert hidden(out) == [MANIFEST] and hidden(tmp_path) == []  # no lock file, no temporary, beside or inside
    assert tree(model) == source


def _prepare(teacher, out, corpus, *extra) -> list[str]:
    return ["teacher", "prepare", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus), "--seq-len", str(SEQ_LEN),
            "--steps", "4", "--batch-size", "4", *extra]


def test_teacher_prepare_refuses_foreign_folders_and_its_teacher(tmp_path, model, corpus_file, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    before = tree(tmp_path)
    assert_refused(main(_prepare(model, out, corpus_file, "--force")), capsys.readouterr().err, "has no bort_teacher.json",
                   "`bort teacher prepare`")
    assert_refused(main(_prepare(model, model, corpus_file, "--force")), capsys.readouterr().err, "the input folder")
    assert tree(tmp_path) == before


def test_teacher_prepare_rewrites_its_own_folder(tmp_path, bert_teacher_nohead, corpus_file):
    out = tmp_path / "prepared"
    assert main(_prepare(bert_teacher_nohead, out, corpus_file)) == 0
    (out / "notes.txt").write_text("keep")
    assert main(_prepare(bert_teacher_nohead, out, corpus_file, "--steps", "6")) == 2  # a rewrite would lose the user's file
    assert (out / "notes.txt").read_text() == "keep"
    (out / "notes.txt").unlink()
    assert main(_prepare(bert_teacher_nohead, out, corpus_file, "--steps", "6")) == 0
    assert json.loads((out / "bort_teacher.json").read_text())["config"]["steps"] == 6
    assert hidden(out) == [MANIFEST] and hidden(tmp_path) == []


def _rte(folder: Path) -> Path:
    folder.mkdir()
    rows = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\tthe cat sat\tthe cat{' not' * (i % 2)}\t{['entailment', 'not_entailment'][i % 2]}"
                                                     for i in range(8)]
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize("verb", ["pretrain", "finetune", "agora", "extract"])
def test_run_folders_refuse_folders_they_did_not_write(tmp_path, model, corpus_file, extract_args, capsys, verb):
    out = tmp_path / "x"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    data = _rte(tmp_path / "rte")
    argv, marker = {
        "pretrain": (["pretrain", "--teacher", str(model), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                      "--device", "cpu"], "pretrain_settings.json"),
        "finetune": (["finetune", "--model", str(model), "--task", "glue/rte", "--data", str(data), "--out", str(out), "--device", "cpu"],
                     "finetune_settings.json"),
        "agora": (["finetune", "--agora", "--model", str(model), "--task", "glue/rte", "--data", str(data), "--out", str(out),
                   "--device", "cpu"], "agora_settings.json"),
        "extract": (extract_args(model, out), "bort.sqlite"),
    }[verb]
    before = tree(tmp_path)
    command = "bort finetune --agora" if verb == "agora" else f"bort {verb}"
    assert_refused(main(argv), capsys.readouterr().err, f"has no {marker}", f"`{command}`")
    assert tree(tmp_path) == before


def test_check_out_counts_only_what_others_wrote(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / ".bort-tmp-1-abc-xyz-staged").mkdir()  # a temporary and a lock file of bort's are not content
    (out / LOCK).write_text("1 bort export\n")
    assert check_out(out, kind="bort export", marker="export.json") == out
    (out / "model.onnx").write_text("half")  # an export killed mid-rename: its lock file says whose it is
    assert check_out(out, kind="bort export", marker="export.json") == out
    with pytest.raises(BortError, match="has no pretrain_settings.json"):
        check_out(out, kind="bort pretrain", marker="pretrain_settings.json")
    (out / LOCK).unlink()
    with pytest.raises(BortError, match="has no export.json"):
        check_out(out, kind="bort export", marker="export.json")


# ------------------------------------------------------------------ one process per folder


_HOLD = """
import sys, time
from bort.training.run import RunFolder
run = RunFolder(sys.argv[1], "pretrain")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, model, corpus_file, bort_cmd):
    out = tmp_path / "pt"
    with reaped(subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)) as holder:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["pretrain", "--teacher", str(model), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                "--seq-len", str(SEQ_LEN), "--steps", "2", "--batch-size", "4", "--eval-sequences", "8", "--device", "cpu",
                "--bf16", "off", "--no-progress"]
        second = subprocess.run([*bort_cmd, *argv], capture_output=True, text=True, timeout=120)
        assert_refused(second.returncode, second.stderr, str(out), f"PID {holder.pid}", "in use")
        assert not (out / "pretrain_settings.json").exists()
        RunFolder(out, "pretrain", main=False)  # a data-parallel rank > 0 never locks, so never waits for rank 0
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (out / LOCK).read_text().split()[0] == str(holder.pid)  # the dead process's lock file is still there
    assert main(argv) == 0  # and is taken over
    assert (out / "model" / "model.safetensors").is_file() and not (out / LOCK).exists()


def test_the_lock_is_shared_within_a_process_and_released(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    first = FolderLock(out, "bort export")
    assert (out / LOCK).read_text() == f"{os.getpid()} bort export\n"
    second = FolderLock(out, "bort export")  # the same process may open its own folder again (e.g. a resumed call)
    first.release()
    first.release()  # only the first call counts
    assert (out / LOCK).exists()
    second.release()
    assert not (out / LOCK).exists()
    with RunFolder(out / "run", "finetune") as run:
        assert (run.out / LOCK).exists()
    assert not (out / "run" / LOCK).exists()


# ------------------------------------------------------------------ temporaries of a killed run


_KILLED_EXPORT = """
import os, signal, sys
import bort.export.onnx as onnx
from bort.atomic import atomic_dir, atomic_file, atomic_write_text

def die(*args, **kwargs):  # mid-export, after the trace: the work folder holds a graph
    with atomic_file(sys.argv[3] + "/plot.png") as f, atomic_dir(sys.argv[3] + "/checkpoint") as d:
        f.write_text("half"); (d / "trainer.pt").write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)

onnx._optimize = die
onnx.export_onnx(onnx.ExportConfig(model=sys.argv[1], out=sys.argv[2]))
"""

_LIVE = """
import sys, time
from bort.atomic import temp_dir
with temp_dir(sys.argv[1], "live"):
    print("ready", flush=True)
    time.sleep(600)
"""


def test_the_next_run_removes_a_killed_runs_temporaries(tmp_path, model):
    out, other, systmp = tmp_path / "x", tmp_path / "run", tmp_path / "systmp"
    other.mkdir()
    systmp.mkdir()
    env = {**os.environ, "TMPDIR": str(systmp)}
    killed = subprocess.Popen([sys.executable, "-c", _KILLED_EXPORT, str(model), str(out), str(other)], env=env, stderr=subprocess.PIPE)
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err.decode()[-2000:]
    left = [p.name for p in [*tmp_path.iterdir(), *other.iterdir()] if is_temp(p.name)]  # the export is built beside OUT
    assert len(left) == 3 and all(name.startswith(f".bort-tmp-{killed.pid}-") for name in left), left  # named for their owner
    assert [p.name for p in other.iterdir() if not is_temp(p.name)] == []  # nothing renamed into place
    assert list(systmp.iterdir()) == []  # the export's work folder was never in the system's temporary folder

    with reaped(subprocess.Popen([sys.executable, "-c", _LIVE, str(tmp_path)], stdout=subprocess.PIPE, text=True)) as live:
        assert live.stdout.readline().strip() == "ready"
        assert main(["export", "--model", str(model), "--out", str(out)]) == 0
        assert hidden(out) == [MANIFEST]
        assert hidden(tmp_path) == [p.name for p in tmp_path.iterdir() if p.name.endswith("-live")]  # only the live process's temporary
        assert len(hidden(tmp_path)) == 1
        atomic_write_text(other / "log.txt", "x")  # any writer in a folder removes the dead ones' temporaries there
        assert hidden(other) == []
    remove_leftovers(tmp_path)
    assert hidden(tmp_path) == []


def test_a_temporary_of_an_earlier_process_with_our_pid_is_a_leftover(tmp_path):
    with temp_dir(tmp_path, "mine") as mine:
        pid, token = mine.name.split("-")[2:4]
        assert pid == str(os.getpid())
        stale = tmp_path / f".bort-tmp-{pid}-{'0' * 7 + ('1' if token == '0' * 8 else '0')}-abc-checkpoint"
        stale.mkdir()  # as a run in a container (each one PID 1) leaves it
        remove_leftovers(tmp_path)
        assert mine.is_dir() and not stale.exists()


# ------------------------------------------------------------------ a last good checkpoint that is good


def test_divergence_keeps_the_checkpoint_from_before_the_rise(tmp_path):
    """Scripted losses: down to 1 by step 4, then up ×3 a step; a checkpoint every 2 steps."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    scripted = [5, 4, 2, 1, 3, 9, 27, 81, 243, 729, 2187, 6561] + [1e6] * 8
    calls = iter(scripted)
    run = RunFolder(tmp_path / "run", "pretrain")
    optim = OptimConfig(lr=1e-3, warmup=0.0)
    weights = {}

    def loss_fn(_batch):
        return model(torch.ones(1, 2)).sum() * 1e-6 + next(calls)  # the weights move, the scripted value dominates

    def on_step(state: TrainState, loss: float) -> None:
        if state.step % 2 == 0:
            run.save(model, optimizer, scheduler, state)
            weights[state.step] = {k: v.clone() for k, v in model.state_dict().items()}
            if state.step == 4:  # a checkpoint at the minimum: good/ is its files, linked, not written again
                assert os.path.samefile(run.checkpoint / GOOD / "model.safetensors", run.checkpoint / "model.safetensors")

    optimizer, scheduler = build_optimizer(model, optim, len(scripted))
    with pytest.raises(TrainingDiverged) as exc, run.diverged():
        train(model, loss_fn, iter(range(100)), steps=len(scripted), optim=optim, optimizer=optimizer, scheduler=scheduler, on_step=on_step)
    good, latest = good_state(run.checkpoint), json.loads((run.checkpoint / "state.json").read_text())
    assert good.step == 4 and latest["step"] > good.step and latest["smooth"] > 2 * good.smooth  # the latest already rose
    assert f"step 4, smoothed loss {good.smooth:.3g}" in str(exc.value) and str(run.checkpoint / GOOD) in str(exc.value)
    kept = load_file(str(run.checkpoint / GOOD / "model.safetensors"))
    assert all(torch.equal(kept[k], v) for k, v in weights[4].items())
    assert not all(torch.equal(kept[k], v) for k, v in weights[latest["step"]].items())


def _pretrain_args(teacher, out, corpus, *extra) -> list[str]:
    return ["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus), "--arch", "1,2,32,64",
            "--seq-len", str(SEQ_LEN), "--steps", "40", "--batch-size", "4", "--save-every", "2", "--eval-every", "40",
            "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress", "--warmup", "0", *extra]


def test_pretrain_divergence_names_a_checkpoint_from_before_the_rise(tmp_path, bert_teacher, corpus_file, capsys, monkeypatch):
    """A pretraining whose loss falls ×0.7 a step, then from step 6 rises ×2 a step (as a too-high learning rate makes it),
    with a checkpoint every 2 steps."""
    real_train = distill_recipe.train

    def rising(model, loss_fn, batches, **kw):
        steps = iter(range(10**6))
        return real_train(model, lambda b: loss_fn(b) * (lambda n: 0.7 ** min(n, 6) * 2.0 ** max(0, n - 6))(next(steps)), batches, **kw)

    monkeypatch.setattr(distill_recipe, "train", rising)
    out = tmp_path / "pt"
    line = assert_refused(main(_pretrain_args(bert_teacher, out, corpus_file)), capsys.readouterr().err, "diverged", str(out / "checkpoint" / GOOD))
    good, latest = good_state(out / "checkpoint"), json.loads((out / "checkpoint" / "state.json").read_text())
    assert good.smooth == good.min_loss and latest["step"] > good.step and latest["smooth"] > 2 * good.smooth
    assert f"(step {good.step}, " in line
