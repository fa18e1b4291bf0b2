"""benchmarks/render.py: docs/BENCHMARKS.md's tables are what the committed results give (CI runs ``--check``), and the
scoreboard pools only the tasks whose teacher beats its baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "benchmarks" / "render.py"


def _render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), *args], capture_output=True, text=True)


def test_benchmarks_md_is_what_the_committed_results_give():
    run = _render("--check")
    assert run.returncode == 0, run.stderr


def _run(job: str, model: str, seed: int, kob: float | None, kept: float, beats: bool) -> dict:
    """A result file of benchmarks/scoreboard.py, with the fields the tables read."""
    common = {"benchmark": "scoreboard", "job": job, "model": model, "seed": seed, "arch": "2,12,384,768", "lr": 3e-4,
              "commit": "abcdef0123", "dirty": False, "machine": {"cpu": "CPU X", "flags": ["avx2"]}}
    if model == "teacher":
        return {**common, "score": 0.8, "baseline_score": 0.5, "teacher_beats_baseline": beats, "teacher_minus_baseline_interval": [0.1, 0.4]}
    return {**common, "baseline_metric": 0.5, "teacher_metric": 0.8, "student_metric": 0.7, "student_metric_fp32": 0.71,
            "kept_over_baseline": kob, "kept_over_baseline_interval": None if kob is None else [kob - 0.1, kob + 0.1], "kept": kept,
            "kept_interval": [kept - 0.05, kept + 0.05], "teacher_beats_baseline": beats}


def _write(results: Path, runs: list[dict]) -> None:
    """The runs as benchmarks/scoreboard.py writes them, one file each under ``results/scoreboard/<job>/``."""
    for r in runs:
        path = results / "scoreboard" / r["job"] / f"{r['model']}-seed{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))


def _scoreboard(tmp_path: Path, runs: list[dict]) -> str:
    """The scoreboard block render.py makes of ``runs`` in a fresh document."""
    _write(tmp_path / "results", runs)
    doc = tmp_path / "B.md"
    doc.write_text("<!-- render:scoreboard -->\n<!-- /render:scoreboard -->\n")
    assert _render("--doc", str(doc), "--results", str(tmp_path / "results")).returncode == 0
    return doc.read_text()


def _blocks(tmp_path: Path, names: list[str], files: dict[str, dict]) -> str:
    """The blocks ``names`` that render.py makes of result ``files`` (path under results/ → document) in a fresh document."""
    for rel, doc in files.items():
        path = tmp_path / "results" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    md = tmp_path / "B.md"
    md.write_text("".join(f"<!-- render:{n} -->\n<!-- /render:{n} -->\n" for n in names))
    assert _render("--doc", str(md), "--results", str(tmp_path / "results")).returncode == 0
    return md.read_text()


def test_the_scoreboard_pools_tasks_whose_teacher_beats_chance_and_check_catches_a_stale_table(tmp_path):
    runs = [_run("cola", "teacher", 0, None, 1, True), _run("cola", "fast", 0, 0.5, 0.8, True), _run("cola", "fast", 1, 0.7, 0.9, True),
            _run("rte", "teacher", 0, None, 1, False), _run("rte", "fast", 0, None, 1.0, False), _run("rte", "fast", 1, 0.9, 0.99, True)]
    _write(tmp_path / "results", runs)
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\nprose\n\n<!-- render:scoreboard -->\nstale\n<!-- /render:scoreboard -->\n\nmore prose\n")
    stale = _render("--check", "--doc", str(doc), "--results", str(tmp_path / "results"))
    assert stale.returncode == 1 and "scoreboard" in stale.stderr
    assert _render("--doc", str(doc), "--results", str(tmp_path / "results")).returncode == 0
    assert _render("--check", "--doc", str(doc), "--results", str(tmp_path / "results")).returncode == 0
    text = doc.read_text()
    assert text.startswith("# B\n\nprose\n") and text.endswith("<!-- /render:scoreboard -->\n\nmore prose\n")
    # cola: seeds 0 and 1 (50, 70); rte: seed 1 only, its seed-0 teacher does not beat B.
    assert "| cola | 50.0 (1) | 80.0 (1) | 60.0 ± 14.1 (2) | 85.0 ± 7.1 (2) |" in text
    assert "| fast | 0 | cola | rte | 50.0 | 80.0 |" in text and "| fast | 1 | cola, rte | – | 80.0 | 94.5 |" in text
    assert "| **fast** | 2 complete | | | **65.0 ± 21.2 (2)** | 87.2 ± 10.3 (2) |" in text
    # A seed still running (seed 2 has cola only) is marked partial and stays out of the figure over seeds.
    path = tmp_path / "results" / "scoreboard" / "cola" / "fast-seed2.json"
    path.write_text(json.dumps(_run("cola", "fast", 2, 0.1, 0.5, True)))
    assert _render("--doc", str(doc), "--results", str(tmp_path / "results")).returncode == 0
    text = doc.read_text()
    assert "| fast | 2 (partial) | cola | – | 10.0 | 50.0 |" in text and "| **fast** | 2 complete | | | **65.0 ± 21.2 (2)** |" in text


def test_a_student_skipped_where_the_teacher_is_at_chance_is_listed_and_left_out(tmp_path):
    """benchmarks/scoreboard.py trains no student where the seed's teacher does not beat its baseline; its record says so."""
    skipped = {"benchmark": "scoreboard", "job": "rte", "model": "fast", "seed": 0, "arch": "2,12,384,768", "commit": "abcdef0123",
               "dirty": False, "machine": {"cpu": "CPU X", "flags": ["avx2"]}, "skipped": "not trained: the teacher does not beat its baseline",
               "teacher_beats_baseline": False, "teacher_metric": 0.527, "baseline_metric": 0.527,
               **dict.fromkeys(("lr", "student_metric", "student_metric_fp32", "kept", "kept_over_baseline", "kept_interval",
                                "kept_over_baseline_interval"))}
    runs = [_run("cola", "teacher", 0, None, 1, True), _run("cola", "fast", 0, 0.5, 0.8, True), _run("rte", "teacher", 0, None, 1, False), skipped]
    text = _scoreboard(tmp_path, runs)
    assert "| rte | fast ⟨2,12,384,768⟩ | 0 | | 52.7 | 52.7 | | | not trained: the teacher does not beat its baseline | | no |" in text
    assert "| fast | 0 | cola | rte | 50.0 | 80.0 |" in text  # pooled over cola alone; rte left out


def test_a_lever_is_paired_with_the_student_of_its_shape_by_task_and_seed(tmp_path):
    """Issue 38: a student with compress flags against the flagless one of the same shape, per (task, seed) they share."""
    lever = {"recipe": {"flags": ["--task-attn-layers", "2"]}}
    runs = [_run("cola", "teacher", s, None, 1, True) for s in (0, 1)] + [
        _run("cola", "fast", 0, 0.5, 0.8, True), _run("cola", "fast", 1, 0.6, 0.85, True),
        {**_run("cola", "attn2", 0, 0.7, 0.9, True), **lever}, {**_run("cola", "attn2", 1, 0.6, 0.85, True), **lever},
        {**_run("cola", "attn2", 2, 0.9, 0.95, True), **lever},  # no base run for seed 2: not paired
        {**_run("cola", "wide", 0, 0.9, 0.95, True), **lever, "arch": "3,12,384,1536"}]  # no base of its shape: not paired
    text = _scoreboard(tmp_path, runs)
    assert "| attn2 | `--task-attn-layers 2` | fast | cola | 10.0 ± 14.1 (2) | 0.0 ± 0.0 (2) |" in text
    assert "| wide |" not in text.split("Levers")[1]


def test_a_lever_on_top_of_another_is_paired_with_both_bases(tmp_path):
    """A student whose flags add one option to another lever's is read against that lever and against the flagless one."""
    grouped, both = {"recipe": {"flags": ["--group-by-length"]}}, {"recipe": {"flags": ["--group-by-length", "--init", "importance"]}}
    other = {"recipe": {"flags": ["--init", "random"]}}  # not a subset of `both`: no pair
    runs = [_run("cola", "teacher", 0, None, 1, True), _run("cola", "fast", 0, 0.5, 0.8, True),
            {**_run("cola", "grouped", 0, 0.6, 0.85, True), **grouped}, {**_run("cola", "impg", 0, 0.75, 0.9, True), **both},
            {**_run("cola", "rand", 0, 0.3, 0.7, True), **other}]
    levers = _scoreboard(tmp_path, runs).split("Levers")[1]
    assert "| impg | `--group-by-length --init importance` | fast | cola | 25.0 (1) |" in levers
    assert "| impg | `--group-by-length --init importance` | grouped | cola | 15.0 (1) |" in levers
    assert "| grouped | `--group-by-length` | fast | cola | 10.0 (1) |" in levers
    assert "| rand | `--init random` | fast | cola | -20.0 (1) |" in levers
    assert "| rand | cola |" not in levers  # nobody's base: its option is in no other student's flags


def test_a_student_pretrained_longer_is_the_lever_of_its_pretraining_steps(tmp_path):
    """The scoreboard pretrains its students PRETRAIN_STEPS long unless told otherwise; a student pretrained longer with the
    same flags is read against the one pretrained as usual, as compress's --pretrain-steps."""
    grouped = {"recipe": {"flags": ["--group-by-length"]}}
    runs = [_run("cola", "teacher", 1, None, 1, True), {**_run("cola", "fast", 1, 0.5, 0.8, True), "pretrain": {"steps": 2000}},
            {**_run("cola", "grouped", 1, 0.6, 0.85, True), **grouped, "pretrain": {"steps": 2000}},
            {**_run("cola", "p4kg", 1, 0.8, 0.9, True), **grouped, "pretrain": {"steps": 4000}}]
    levers = _scoreboard(tmp_path, runs).split("Levers")[1]
    assert "| p4kg | `--group-by-length --pretrain-steps 4000` | grouped | cola | 20.0 (1) |" in levers
    assert "| p4kg | `--group-by-length --pretrain-steps 4000` | fast | cola | 30.0 (1) |" in levers
    assert "| grouped | `--group-by-length` | fast | cola | 10.0 (1) |" in levers  # the same pretraining: the flag alone


def test_a_file_flag_given_absolute_or_relative_pairs_the_levers_all_the_same(tmp_path):
    """A run gives a file under benchmarks/out/ absolute (/work/x/benchmarks/out/...) or relative to its checkout: the same
    option, so the lever that adds one flag to it is paired with it, and the path is shown as the repository's."""
    xfer = {"recipe": {"flags": ["--augment-inputs", "/work/sb12/benchmarks/out/transfer/mrpc.jsonl"]}}
    both = {"recipe": {"flags": ["--transform", "pair-retrieve", "--augment-inputs", "benchmarks/out/transfer/mrpc.jsonl"]}}
    runs = [_run("mrpc", "teacher", 1, None, 1, True), {**_run("mrpc", "xfer", 1, 0.5, 0.8, True), **xfer},
            {**_run("mrpc", "xprg", 1, 0.9, 0.95, True), **both}]
    levers = _scoreboard(tmp_path, runs).split("Levers")[1]
    assert "| xprg | `--transform pair-retrieve --augment-inputs benchmarks/out/transfer/mrpc.jsonl` | xfer | mrpc | 40.0 (1) | 0.0 (1) |" in levers


def test_the_shapes_table_gives_each_candidates_speed_up_over_the_teachers_shape(tmp_path):
    """benchmarks/shape_speed.py's results: one row per candidate (the teacher's own shape, the reference, left out)."""
    def shape(arch: str, params: int, b1: float, b32: float, fixed: float) -> dict:
        return {"arch": arch, "params": params, "fixed_128": {"ms": 1.0, "speedup": fixed},
                "real": {"1": {"ms_per_seq": 1.0, "speedup": b1, "mean_tokens": 50.0}, "32": {"ms_per_seq": 1.0, "speedup": b32, "mean_tokens": 50.0}}}
    doc = {"benchmark": "shapes", "job": "mrpc", "teacher_arch": "6,12,384,1536", "runtime": "onnx-int8", "threads": 1, "rounds": 7, "texts": 256,
           "shapes": [shape("6,12,384,1536", 22_000_000, 1.0, 1.0, 1.0), shape("3,6,384,192", 12_345_678, 4.2, 4.01, 3.72)],
           "commit": "abcdef0123", "dirty": False, "machine": {"cpu": "CPU X"}, "load_avg": [2.5, 2.0, 1.0]}
    text = _blocks(tmp_path, ["shapes"], {"shapes/mrpc.json": doc})
    assert "| mrpc | ⟨3,6,384,192⟩ | 12,345,678 | 4.20× | 4.01× | 3.72× | 2.5 |" in text
    assert "⟨6,12,384,1536⟩ |" not in text and "commits abcdef0, CPU X" in text


def test_the_padding_block_gives_each_tasks_tokens_over_the_real_ones(tmp_path):
    row = {"job": "mrpc", "examples": 3668, "mean_tokens": 53.2, "random_over_real": 1.5, "grouped_over_real": 1.02}
    doc = {"benchmark": "padding", "tokenizer": "T", "max_seq_len": 128, "batch_size": 32, "max_train": 8000, "seed": 0,
           "tasks": [row, {**row, "job": "cola", "random_over_real": 2.0}], "commit": "abcdef0123", "dirty": False}
    text = _blocks(tmp_path, ["padding"], {"training/padding.json": doc})
    assert text.index("| cola | 3,668 | 53.2 | 2.00× | 1.02× |") < text.index("| mrpc | 3,668 | 53.2 | 1.50× | 1.02× |")  # the tasks' order


def test_the_cost_block_sums_each_models_trials(tmp_path):
    def trial(job: str, model: str, train_s: float, steps_run: int) -> dict:  # 64 inputs: 2 steps an epoch at batch 32
        return {"benchmark": "scoreboard-trial", "job": job, "model": model, "train_examples": 48, "augmented": 16, "steps_run": steps_run,
                "train_s": train_s, "load_avg": [2.0, 1.0, 1.0]}
    trials = [trial("mrpc", "fast", 600, 4), trial("mrpc", "fast", 1800, 6), trial("mrpc", "teacher", 3600, 2)]
    text = _blocks(tmp_path, ["cost"], {f"trials/mrpc/{i}.json": t for i, t in enumerate(trials)})
    # fast: 10 and 30 minutes over 2 and 3 epochs (5 and 10 an epoch, median 7.5), 40 minutes in all; the teacher's row first
    assert text.index("| mrpc | teacher | 1 | 64 | 60.0 | 1.0 | 2.0–2.0 |") < text.index("| mrpc | fast | 2 | 64 | 7.5 | 0.7 | 2.0–2.0 |")


def test_the_agnostic_block_gives_each_pick_its_embedding_share_and_speed_ups(tmp_path):
    student = {"teacher_metric": 0.9, "student_metric": 0.855, "kept_over_baseline": 0.95, "kept_over_baseline_interval": [0.93, 0.97],
               "speedup_same_runtime": 4.4, "speedup_real_lengths": {"1": 6.0, "32": 4.6}}
    doc = {"benchmark": "agnostic", "model": "x4", "teacher": "/cache/all-mpnet-base-v2", "min_speedup": 4.0, "arch": "3,12,768,3072",
           "params": 55_000_000, "teacher_params": 110_000_000, "student": student, "commit": "abcdef0123", "dirty": False}
    text = _blocks(tmp_path, ["agnostic", "scoreboard_mpnet"], {"agnostic-scoreboard-mpnet/x4.json": doc})
    assert ("| all-mpnet-base-v2 | x4 | ≥ 4× | ⟨3,12,768,3072⟩ | 55,000,000 (50%) | 90.0 | 85.5 | 95.0 [93.0, 97.0] | 4.4× | 6.0× | 4.6× |"
            in text)
    assert "No scoreboard result is committed yet." in text  # the MPNet board: its own folder, empty here


def test_the_init_slices_block_gives_each_starts_loss_and_its_ratio_to_leading_slices(tmp_path):
    def run(init: str, losses: list[float]) -> dict:
        return {"shape": "2,12,384,768", "init": init, "steps": 300, "points": [{"step": s, "heldout_loss": x} for s, x in zip((0, 300), losses)]}
    doc = {"benchmark": "init-slices", "runs": [run("teacher", [0.9, 0.4]), run("importance", [0.8, 0.3])], "teacher": "minilm-l6",
           "corpus": "/data/corpus/wikitext-103", "recipe": "R", "threads": 1, "commit": "abcdef0123", "dirty": False}
    text = _blocks(tmp_path, ["init_slices"], {"training/init-slices.json": doc})
    assert "| ⟨2,12,384,768⟩ | leading | 0.900 | 0.400 |" in text
    assert "| ⟨2,12,384,768⟩ | importance | 0.800 (0.89×) | 0.300 (0.75×) |" in text and "wikitext-103 held-out" in text


def test_the_shape_rank_block_gives_each_shapes_errors_and_each_rankings_rho(tmp_path):
    def model(name: str, arch: str, params: int, e: float, pooled: float) -> dict:
        return {"model": name, "arch": arch, "params": params, "kept_over_baseline": {"mrpc": pooled}, "pooled": pooled, "errors": {"teacher:20": e}}
    doc = {"benchmark": "shape-rank", "teacher": "minilm-l6", "tasks": ["mrpc"], "errors": {"teacher:20": {}},
           "models": [model("fast", "2,12,384,768", 14_286_336, 0.25, 0.343), model("deep4", "4,6,288,192", 10_719_552, 0.3, 0.5)],
           "rho": {"ê teacher:20": {"mrpc": None, "pooled": None}, "p̂ alone": {"mrpc": 0.5, "pooled": -0.5}}, "commit": "abcdef0123", "dirty": True}
    text = _blocks(tmp_path, ["shape_rank"], {"shapes/rank.json": doc})
    assert text.index("| deep4 | ⟨4,6,288,192⟩ | 10,719,552 | 0.3000 | 50.0 |") < text.index("| fast | ⟨2,12,384,768⟩ | 14,286,336 | 0.2500 | 34.3 |")
    assert "| ê teacher:20 | – | – |" in text and "| p̂ alone | 0.500 | -0.500 |" in text and "commit abcdef0+" in text


def test_the_overlap_block_gives_each_cuts_scores_and_shares_above_chance(tmp_path):
    row = {"examples": 100, "baseline": 0.5, "teacher": 0.8, "grouped": 0.65, "prg": 0.77}
    doc = {"benchmark": "overlap", "job": "qnli", "seed": 0, "models": ["teacher", "grouped", "prg"], "left_out_learnt": 39,
           "subsets": {"first text in train": row, "neither text in train": {**row, "examples": 1234, "teacher": 0.5}},
           "commit": "abcdef0123", "dirty": False}
    text = _blocks(tmp_path, ["overlap"], {"overlap/qnli-seed0.json": doc})
    assert "qnli, seed 0 (39 dev examples among the students' new inputs left out):" in text
    assert "| first text in train | 100 | 50.0 | 80.0 | 65.0 | 50.0 | 77.0 | 90.0 |" in text  # (S − B)/(T − B): 0.15/0.3, 0.27/0.3
    assert "| neither text in train | 1,234 | 50.0 | 50.0 | 65.0 | – | 77.0 | – |" in text  # the teacher at chance: no share


def test_the_grouped_teacher_block_sets_each_teachers_grouped_score_beside_its_random_batch_one(tmp_path):
    def doc(job: str, random: float, grouped: float) -> dict:
        return {"benchmark": "grouped-teacher", "job": job, "seed": 1, "lr": 3e-5, "baseline_score": 0.0,
                "random": {"score": random, "trained_here": job == "cola"},
                "grouped": {"score": grouped, "steps_run": 1234}, "commit": "abcdef0123", "dirty": False}
    text = _blocks(tmp_path, ["grouped_teacher"], {"training/grouped-teacher/mrpc-seed1.json": doc("mrpc", 0.8, 0.79),
                                                   "training/grouped-teacher/cola-seed1.json": doc("cola", 0.29, 0.31)})
    cola, mrpc = "| cola | 1 | 3e-05 | 0.0 | 29.0 | 31.0 | +2.0 | 1,234 |", "| mrpc | 1 | 3e-05 | 0.0 | 80.0 (another machine) | 79.0 | -1.0 | 1,234 |"
    assert text.index(cola) < text.index(mrpc)  # in the task order
