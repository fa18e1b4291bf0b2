"""The fault test of issue 13: kill -9 every stage at chosen points, run the same command again, and
end with exactly the outputs of an uninterrupted run.

For each stage (extract, pretrain, finetune, Agora, export) and each kill point, the real CLI
(``python -m bort …``) runs as a subprocess and is killed with SIGKILL at that point; the identical
command then runs again, as a new process, to completion. Its folder is compared with an
uninterrupted run of the same command in another folder (run once per stage, in this process):

- the same files, and in every ``*.safetensors`` the same tensors, bit for bit (bort resumes exactly),
  the same checkpoint state (optimiser, scheduler, RNG), the same ``model.onnx`` bytes;
- the same JSON files and run store, less wall-time fields (``wall_s``, ``train_s``, …) and the
  output folder's own path;
- the same metric lines, each once;
- no leftovers: no ``.bort-tmp-*`` entry, no ``.bort.lock`` once it is done, nothing of bort's in
  the temporary folder (``TMPDIR``, a folder of the test's own) and no new ``/tmp/bort-onnx-*``;
- and the second process is not refused by the lock the killed one left (a stale lock is taken over).

The harness (kill points, the runner, the comparisons) is tests/faults.py.

One kill point per stage runs by default; the others are marked ``slow``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SEQ_LEN
from faults import SITECUSTOMIZE, STAGED, Point, Runner, checkpoint_step, json_lines, kill_and_resume, logged_steps, reference, stored_trials, temp_names
from glue_files import write_rte

from bort.atomic import LOCK


@pytest.fixture(scope="session")
def freeze_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("freeze_site")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return folder


@pytest.fixture
def runner(tmp_path, bort_cmd, freeze_site) -> Runner:
    return Runner(bort_cmd, tmp_path, freeze_site)


# ------------------------------------------------------------------ extract


def _extract_unfinished(rows: tuple[int, int]) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        n = len(stored_trials(out))
        assert rows[0] <= n <= rows[1] and not (out / "result.json").exists(), f"{n} trials stored"

    return state


def _extract_final(out: Path) -> None:
    assert (out / "result.json").is_file() and not (out / "best").exists() and temp_names(out, "-best")


EXTRACT_POINTS = [
    Point("after-trials", _extract_unfinished((2, 6)), poll=lambda out: len(stored_trials(out)) >= 2),
    Point("before-first-trial", _extract_unfinished((0, 0)), event="open", match=r"/corpus\.txt$", slow=True),  # the store is open
    Point("final-save", _extract_final, event="os.rename", match=r"-best -> {out}/best$", slow=True),
]


@pytest.fixture(scope="module")
def extract_ref(tmp_path_factory, bert_teacher, extract_args):
    def argv(out: Path) -> list[str]:
        # FLOPs, not measured latency, so both runs train the same 7 of the 14 eligible candidates.
        return extract_args(bert_teacher, out, "--latency", "flops", "--epsilon", "2", "--steps", "20")

    out = tmp_path_factory.mktemp("extract_ref") / "run"
    reference(out, argv(out))
    assert len(stored_trials(out)) == 7
    return argv, out


def _not_trained_again(out: Path) -> Callable[[], None]:
    """After the kill: the stored trials, with their timestamps; the check that the second run kept them as they were."""
    before = stored_trials(out, "arch, theta, error, created")

    def check() -> None:
        after = {row[:2]: row for row in stored_trials(out, "arch, theta, error, created")}
        assert all(after[row[:2]] == row for row in before), "a trial stored before the kill was trained again"

    return check


@pytest.mark.parametrize("point", [p.param() for p in EXTRACT_POINTS])
def test_extract_resumes_after_kill(point, extract_ref, runner, tmp_path):
    argv, ref = extract_ref
    out = tmp_path / "run"
    kill_and_resume(runner, argv, point, ref, out, between=lambda: _not_trained_again(out))


@pytest.fixture(scope="module")
def extract_headless_ref(tmp_path_factory, bert_teacher_nohead, extract_args):
    def argv(out: Path) -> list[str]:
        return extract_args(bert_teacher_nohead, out, "--latency", "flops", "--epsilon", "2")

    out = tmp_path_factory.mktemp("extract_headless_ref") / "run"
    reference(out, argv(out))
    return argv, out


def _head_trained(out: Path) -> None:  # the prepared teacher is built beside OUT/teacher_mlm, and swapped in whole
    assert not stored_trials(out) and temp_names(out, "-teacher_mlm") and not (out / "teacher_mlm" / "bort_teacher.json").exists()


@pytest.mark.slow
def test_extract_with_a_headless_teacher_resumes_after_kill(extract_headless_ref, runner, tmp_path):
    argv, ref = extract_headless_ref
    point = Point("teacher-head-save", _head_trained, event="os.rename", match=r"-teacher_mlm -> {out}/teacher_mlm$")
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ pretrain


def _pretrain_state(checkpoint: int | None, lines: list[int], staging: bool = False) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        assert checkpoint_step(out) == checkpoint and logged_steps(out / "metrics.jsonl") == lines
        assert not (out / "pretrain.json").exists() or staging
        assert bool(temp_names(out, "-staged")) == staging

    return state


def _no_checkpoint_mid_swap(out: Path) -> None:
    # The step-4 checkpoint has been moved aside (to .checkpoint.bort-previous), the step-8 one is not yet in its place; the
    # next run puts the step-4 one back and resumes from it: no finished work is lost.
    assert not (out / "checkpoint").exists() and (out / ".checkpoint.bort-previous" / "trainer.pt").is_file() and temp_names(out, "-checkpoint")
    assert logged_steps(out / "metrics.jsonl") == [2, 4, 6, 8]


PRETRAIN_POINTS = [
    # Step 8 logs its line, then saves: the kill leaves the step-4 checkpoint and a line (6) past it.
    Point("after-checkpoint", _pretrain_state(4, [2, 4, 6]), event="open", match=r"{out}/metrics\.jsonl$", nth=4,
          resumes="pretrain: resuming from step 4 of 12"),
    # Issue 13's defect 7: lines written before the first checkpoint were written twice.
    Point("before-first-checkpoint", _pretrain_state(None, [2]), event="open", match=r"{out}/metrics\.jsonl$", nth=2, slow=True),
    Point("checkpoint-swap", _no_checkpoint_mid_swap, event="os.rename", match=r"-checkpoint -> {out}/checkpoint$", nth=2,
          resumes="pretrain: resuming from step 4 of 12", slow=True),
    Point("final-save", _pretrain_state(12, [2, 4, 6, 8, 10, 12], staging=True), event="os.rename", match=STAGED, nth=2,
          resumes="pretrain: resuming from step 12 of 12", slow=True),
]


@pytest.fixture(scope="module")
def pretrain_ref(tmp_path_factory, bert_teacher, corpus_file):
    def argv(out: Path) -> list[str]:
        return ["pretrain", "--teacher", str(bert_teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                "--seq-len", str(SEQ_LEN), "--steps", "12", "--batch-size", "4", "--save-every", "4", "--eval-every", "2",
                "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress"]

    out = tmp_path_factory.mktemp("pretrain_ref") / "run"
    reference(out, argv(out))
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in PRETRAIN_POINTS])
def test_pretrain_resumes_after_kill(point, pretrain_ref, runner, tmp_path):
    argv, ref = pretrain_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ finetune


@pytest.fixture(scope="module")
def rte_data(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=96, n_dev=40)


def _finetune_state(checkpoint: int | None, lines: list[int], *files: str) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        assert checkpoint_step(out) == checkpoint and logged_steps(out / "log.jsonl") == lines
        assert {f for f in ("eval.json", "finetune.json") if (out / f).exists()} == set(files)

    return state


FINETUNE_POINTS = [
    # The step-6 evaluation opens the log: the step-3 checkpoint (and best model) are there.
    Point("after-checkpoint", _finetune_state(3, [3]), event="open", match=r"{out}/log\.jsonl$", nth=2,
          resumes="finetune: resuming from step 3 of 15"),
    # The first best model is being renamed into OUT: logged, no checkpoint yet.
    Point("before-first-checkpoint", _finetune_state(None, [3]), event="os.rename", match=STAGED, slow=True),
    # Early stopping at step 9 (patience 2): the report is being written.
    Point("final-report", _finetune_state(9, [3, 6, 9]), event="os.rename", match=r" -> {out}/finetune\.json$",
          resumes="finetune: resuming from step 9 of 15", slow=True),
    # Everything written; the checkpoint is being removed.
    Point("checkpoint-removal", _finetune_state(9, [3, 6, 9], "eval.json", "finetune.json"), event="shutil.rmtree",
          match=r"^{out}/checkpoint$", slow=True),
]


def _finetune_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["finetune", "--model", str(model), "--task", "glue/rte", "--data", str(data), "--out", str(out), "--steps", "15",
            "--eval-every", "3", "--patience", "2", "--batch-size", "16", "--lr", "1e-3", "--max-seq-len", "32",
            "--bf16", "off", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def finetune_ref(tmp_path_factory, bert_teacher, rte_data):
    def argv(out: Path) -> list[str]:
        return _finetune_argv(bert_teacher, rte_data, out)

    out = tmp_path_factory.mktemp("finetune_ref") / "run"
    reference(out, argv(out))
    report = json.loads((out / "finetune.json").read_text())
    assert report["best_step"] == 3 and report["steps_run"] == 9 and report["stopped_early"]  # what the kill points assume
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in FINETUNE_POINTS])
def test_finetune_resumes_after_kill(point, finetune_ref, runner, tmp_path):
    argv, ref = finetune_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ Agora


def _agora_state(rounds: int, points: bool, *, round_log: str | None = None, final: bool = False) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        done = json.loads((out / "agora.json").read_text())["rounds"] if (out / "agora.json").is_file() else []
        assert len(done) == rounds and bool(json_lines(out / "agora_points.jsonl")) == points
        assert not (out / "eval.json").exists() and bool(temp_names(out, "-staged")) == final
        if round_log:  # a glob: which θ a later round trains first depends on the earlier rounds' dev scores, so on the data
            logs = list((out / "rounds").glob(f"{round_log}/log.jsonl"))
            assert any(logged_steps(log) and not (log.parent / "eval.json").exists() for log in logs)

    return state


AGORA_THETAS = "lr: [1e-3]\nweight_decay: [0.01]\nwarmup: [0.1]\nbatch_size: [16]\nseed: [0, 1]\n"  # two θ: two rounds
THETA0 = "lr1e-03_wd0.01_wu0.1_bs16_s0"

AGORA_POINTS = [
    # Round 0's new points are logged, its record (agora.json) is being written.
    Point("points-before-record", _agora_state(0, True), event="os.rename", match=r" -> {out}/agora\.json$"),
    Point("round-0-training", _agora_state(0, False, round_log=f"0/{THETA0}"), event="open",
          match=r"{out}/rounds/0/[^/]+/log\.jsonl$", nth=2, resumes="finetune: resuming from step 3 of 6", slow=True),
    Point("round-1-training", _agora_state(1, True, round_log="1/*"), event="open",
          match=r"{out}/rounds/1/[^/]+/log\.jsonl$", nth=2, resumes="finetune: resuming from step 3 of 6", slow=True),
    Point("final-copy", _agora_state(2, True, final=True), event="os.rename", match=STAGED, slow=True),
]


@pytest.fixture(scope="module")
def agora_ref(tmp_path_factory, bert_teacher, rte_data):
    space = tmp_path_factory.mktemp("agora_space") / "space.yaml"
    space.write_text(AGORA_THETAS, encoding="utf-8")

    def argv(out: Path) -> list[str]:
        return ["finetune", "--agora", "--agora-space", str(space), "--model", str(bert_teacher), "--task", "glue/rte", "--data", str(rte_data),
                "--out", str(out), "--steps", "6", "--eval-every", "3", "--patience", "0", "--max-seq-len", "32", "--transform", "swap",
                "--variants", "2", "--bf16", "off", "--device", "cpu", "--no-progress"]

    out = tmp_path_factory.mktemp("agora_ref") / "run"
    reference(out, argv(out))
    rounds = json.loads((out / "agora.json").read_text())["rounds"]
    assert len(rounds) == 2 and all(r["new_points"] for r in rounds)  # what the kill points assume
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in AGORA_POINTS])
def test_agora_resumes_after_kill(point, agora_ref, runner, tmp_path):
    argv, ref = agora_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ export


def _export_state(*, built: bool) -> Callable[[Path], None]:
    """The export is built in a temporary beside OUT (complete once ``built``); OUT holds nothing but the lock."""
    def state(out: Path) -> None:
        work = temp_names(out.parent, f"-{out.name}")
        assert len(work) == 1 and (out.parent / work[0] / "export.json").is_file() == built, work
        assert [p.name for p in out.iterdir()] == [LOCK]

    return state


EXPORT_POINTS = [
    # The whole export is built, and OUT (the empty folder holding the lock) is about to be moved aside for it.
    Point("final-rename", _export_state(built=True), event="os.rename", match=r"{out} -> .*/\.run\.bort-previous$"),
    Point("onnx-work-folder", _export_state(built=False), event="tempfile.mkdtemp", match=r"-onnx$", slow=True),
    Point("fused-graph", _export_state(built=False), event="os.rename", match=r"/traced\.onnx -> .*-run/model\.onnx$", slow=True),
]


@pytest.fixture(scope="module")
def export_ref(tmp_path_factory, finetune_ref):
    model = finetune_ref[1]  # a fine-tuned classifier: the first-token last layer, the fused graph

    def argv(out: Path) -> list[str]:
        return ["export", "--model", str(model), "--out", str(out)]

    out = tmp_path_factory.mktemp("export_ref") / "run"
    reference(out, argv(out))
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in EXPORT_POINTS])
def test_export_resumes_after_kill(point, export_ref, runner, tmp_path):
    argv, ref = export_ref
    # model.onnx is compared byte for byte: the export is deterministic (same graph, same names).
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")
