"""The recipe behind ``bort compress``, readable top to bottom: the existing stages, chained.

teacher (→ ``RUN/teacher_mlm`` only if a logit objective needs an MLM head) → ``RUN/extract`` (the
lowest-ê ξ at least ``--min-speedup``× faster, or with ``--pick w`` the best W) → ``RUN/pretrain`` (teacher init, the chosen objectives)
→ for each task ``RUN/finetune/<task>/teacher`` (unless ``--task-teacher``) and ``…/student`` (task
distillation with augmentation; both choose on a held-out slice of the training set) → ``RUN/export/<task>``
(int8 ONNX; ``RUN/export/encoder`` without a task) → ``RUN/score/<task>`` (teacher, int8 student, fp32 student
and the trivial baseline on the dev split, the shares kept: :mod:`bort.compress.score`) → ``RUN/bench``
(teacher and student side by side at a fixed length) → ``RUN/bench_real/<task>`` (both on int8, on the
scored split's own texts) → ``RUN/report.md``, ``report.png`` and ``compress.json``. Each stage is the
stage's own library entry; this module only fills in their configs. :func:`check` refuses what a later stage
would before the first one runs, and a rerun resumes by what each finished stage used (:mod:`bort.compress.resume`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PretrainedConfig

from bort.arch import Arch
from bort.bench.recipe import bench
from bort.bench.timing import time_side_by_side
from bort.compress.config import CompressConfig
from bort.compress.report import CompressResult, write_report
from bort.compress.resume import Stages
from bort.compress.score import score_embedding, score_task
from bort.compress.stages import Ledger
from bort.errors import BortError
from bort.export.onnx import ExportConfig, export_onnx
from bort.extract.pareto import cost_key, fast_enough, ranked, speedup
from bort.extract.recipe import ExtractConfig, extract
from bort.extract.report import ExtractResult
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig, finetune
from bort.finetune.task_distill import TaskDistill, TaskTeacher
from bort.finetune.transforms import check_transform
from bort.models.families import config_arch
from bort.models.loading import has_mlm_head, model_dir, position_limit, read_config, resolve_model_path
from bort.pretrain.recipe import PretrainConfig, pretrain
from bort.shared import resolve_device
from bort.tasks.kept import task_score
from bort.tasks.registry import get_task
from bort.tasks.source import OwnData, open_task
from bort.teacher.prepare import TEACHER_MLM_DIR, PrepareConfig, prepare
from bort.training.loop import OptimConfig
from bort.training.losses import LogitLoss
from bort.training.objectives import RepresentationLoss
from bort.training.run import RunFolder


def compress(cfg: CompressConfig) -> CompressResult:
    """Run (or resume) every stage of ``cfg`` in ``cfg.out`` and write the report; returns ``compress.json``'s record."""
    device = str(resolve_device(cfg.device))
    teacher_path = check(cfg, device)  # every stage's settings, before the first stage runs
    with RunFolder(cfg.out, "compress", marker="compress_settings.json", inputs=(cfg.teacher, cfg.corpus, *cfg.data, *cfg.task_teachers, cfg.embedding_data,
                                                                              cfg.finetune.own.train_file, cfg.finetune.own.validation_file,
                                                                              cfg.finetune.own.test_file)) as run:
        return _compress(cfg, run, device, teacher_path)


def _compress(cfg: CompressConfig, run: RunFolder, device: str, teacher_path: Path) -> CompressResult:
    jobs, out = cfg.jobs(), run.out
    needs_head = cfg.loss.active and not has_mlm_head(teacher_path)
    # Stages: the MLM head, extraction, pretraining; per task the teacher (unless given), the student, its export and its scores; the
    # encoder's export without a task; the embedding scores; the benchmark; the benchmark on real inputs, per scored split of
    # single texts or pairs (multiple choice has none to time).
    scored = sum(not (data.get("task") and get_task(data["task"]).kind == "multiple_choice") for _, data, _ in jobs) or int(bool(cfg.embedding_task))
    teachers, students = len(cfg.teacher_lrs) or 1, len(cfg.student_lrs) or 1  # fine-tunings per task (a teacher where none is given)
    total = (int(needs_head) + 2 + sum(students + 2 + teachers * (given is None) for *_, given in jobs) + (not jobs) + bool(cfg.embedding_task)
             + 1 + scored)
    ledger = Stages(Ledger(out, total), run.settings_file, cfg.settings())
    common = stage_common(cfg)

    # 1. An MLM head, only for a logit objective and a teacher without one; later stages then distil the prepared teacher.
    teacher = cfg.teacher
    if needs_head:
        folder = out / TEACHER_MLM_DIR
        head = replace(cfg.pretrain.head, seed=cfg.seed)
        prepare_cfg = PrepareConfig(out=folder, teacher=cfg.teacher, corpus=cfg.corpus, seq_len=cfg.seq_len, head=head, device=device)
        ledger.run("teacher_mlm", folder, lambda: prepare(prepare_cfg).to_dict(), prepare_cfg, what="train the teacher's MLM head")
        teacher = str(folder)

    # 2. Extraction: ê from the pretraining objectives (the logit terms if any, else the representation terms), candidates ≥ X× faster
    # with the margin, by î of the model that ships (its head); for the lowest-ê pick, every maximal eligible shape is trained too;
    # the pick is timed side by side with the teacher (docs/design.md).
    extract_cfg = extract_config(cfg, out / "extract", teacher, device, common)

    def extract_stage() -> dict:
        result = extract(extract_cfg)
        return _pick(cfg, extract_cfg, result, read_config(resolve_model_path(teacher)))

    which = "best-W" if cfg.pick == "w" else "lowest-ê"
    chosen = ledger.run("extract", extract_cfg.out, extract_stage, extract_cfg, what=f"the {which} ξ at least {cfg.min_speedup:g}× faster than the teacher "
                                                                   f"on {extract_cfg.latency.runtime_name}")

    # 3. Pretraining of the chosen ξ from the teacher's slices.
    student = out / "pretrain"
    pretrain_cfg = pretrain_config(cfg, student, teacher, Arch.parse(chosen["arch"]), device, common)
    ledger.run("pretrain", student, lambda: pretrain(pretrain_cfg).to_dict(), pretrain_cfg, what=f"⟨{chosen['arch']}⟩, {cfg.pretrain_steps} steps")

    # 4. Per task: the fine-tuned teacher, the task-distilled student and its int8 export.
    tasks = {}
    for name, data, given in jobs:
        tasks[name] = _task(cfg, ledger, out, name, data, given, student, device, common)
    encoder = out / "export" / "encoder"
    if not jobs:
        export_cfg = ExportConfig(model=str(student), out=encoder, quantize="int8")
        ledger.run("export/encoder", encoder, lambda: export_onnx(export_cfg).to_dict(), export_cfg, what="the task-agnostic student, int8 ONNX")
    quality = {}
    if cfg.embedding_task:
        folder = out / "score" / "embedding"
        args = {"task": cfg.embedding_task, "data": cfg.embedding_data, "seed": cfg.seed, "teacher": cfg.teacher, "student": student,
                "export": encoder, "device": device, "out": folder}
        quality = ledger.run("score/embedding", folder, lambda: score_embedding(**args), args,
                             what=f"the sentence embeddings of the teacher, the int8 and the fp32 student on {cfg.embedding_task}, without fine-tuning")

    # 5. One benchmark: each teacher on every runtime (HF eager fp32 among them), each student's int8 export.
    # (A task teacher given for two tasks is timed once: bench refuses a model named twice.)
    pairs = [(t["teacher_folder"], t["student_onnx"]) for t in tasks.values()] or [(cfg.teacher, str(out / "export" / "encoder"))]
    bench_cfg = cfg.bench.build(out=out / "bench", models=tuple(dict.fromkeys(m for pair in pairs for m in pair)))

    def bench_stage() -> dict:
        bench(bench_cfg)
        return {"models": list(bench_cfg.models)}

    ledger.run("bench", bench_cfg.out, bench_stage, bench_cfg, what="teacher and student side by side")

    # 6. Speed at real lengths: each scored split's own texts, unpadded, at batch 1 and 32; the teacher's int8 export (made by the
    # benchmark; bench.json lists the models in order) beside the student's, where it is now (a copied run folder's is in the copy).
    made_in = Path(ledger.ledger.record("bench")["output"])
    exported = {model: str(bench_cfg.out / Path(m["onnx-int8"]["folder"]).relative_to(made_in)) for model, m in
                zip(bench_cfg.models, json.loads((bench_cfg.out / "bench.json").read_text())["models"]) if "onnx-int8" in m}
    for (name, e), (teacher_model, student_onnx) in zip((tasks or ({"embedding": quality} if quality else {})).items(), pairs):
        if e["texts"] is None:  # multiple choice: no single texts or pairs to time
            continue
        real = out / "bench_real" / name
        real_cfg = cfg.bench.build(out=real, models=(exported.get(teacher_model) or teacher_model, student_onnx), runtimes=("onnx-int8",),
                                   texts=Path(e["texts"]))
        ledger.run(f"bench_real/{name}", real, lambda c=real_cfg: bench(c).to_dict()["texts"], real_cfg,
                   what="teacher and student on int8, on the scored split's own texts")
    ledger.flush()
    return write_report(ledger.ledger, cfg, chosen=chosen, tasks=tasks, pairs=pairs, student=student, quality=quality)


def stage_common(cfg: CompressConfig) -> dict:
    """What every training stage takes from the run: its seed, progress bars and tracking."""
    return {"seed": cfg.seed, "progress": cfg.progress, "report_to": cfg.report_to, "logging_steps": cfg.logging_steps}


def extract_config(cfg: CompressConfig, out: Path, teacher: str, device: str, common: dict) -> ExtractConfig:
    """compress's extraction into ``out``: ê from the pretraining objectives (the logit terms if any, else the representation
    terms), candidates (1 + ``--speedup-margin``) × ``--min-speedup`` faster by î of the model that ships (its head); for the
    lowest-ê pick every maximal eligible shape is trained too."""
    logit = cfg.loss.active
    return cfg.extract.build(out=out, teacher=teacher, corpus=cfg.corpus, seq_len=cfg.seq_len, steps=cfg.extract_steps,
                             latency=replace(cfg.extract.latency, head=cfg.ship_head()), min_speedup=cfg.min_speedup * (1 + cfg.speedup_margin),
                             init=cfg.init, maximal=cfg.pick == "quality", device=device,
                             loss=cfg.loss if logit else LogitLoss(0.0, 0.0), representation=RepresentationLoss() if logit else cfg.representation,
                             **{k: v for k, v in common.items() if k != "logging_steps"})  # its trials are sent, not their steps


def pretrain_config(cfg: CompressConfig, out: Path, teacher: str, arch: Arch, device: str, common: dict) -> PretrainConfig:
    """compress's pretraining of ``arch`` into ``out``: from the teacher's slices (``--init``) with the run's objectives; sentences
    and cut views serve the representation terms alone, so logit terms pretrain on packed blocks. ``common``: the seed, progress
    and tracking of the run (empty: the config's defaults)."""
    logit = cfg.loss.active
    return cfg.pretrain.build(out=out, teacher=teacher, corpus=cfg.corpus, arch=arch, init=cfg.init, loss=cfg.loss,
                              representation=cfg.representation, steps=cfg.pretrain_steps, seq_len=cfg.seq_len, device=device,
                              head=replace(cfg.pretrain.head, seed=cfg.seed), min_view_len=None if logit else cfg.pretrain.min_view_len,
                              inputs="blocks" if logit else cfg.pretrain.inputs, **common)


def _pick(cfg: CompressConfig, extract_cfg: ExtractConfig, result: ExtractResult, config: PretrainedConfig) -> dict:
    """The chosen ξ: the best trained candidate (lowest ê, or with ``--pick w`` best W) at least the extraction's
    ``min_speedup`` ((1 + ``--speedup-margin``) × ``--min-speedup``) faster by î, and as fast timed side by side with the
    teacher (:func:`~bort.bench.timing.time_side_by_side`); the next best where it is not. With FLOPs as î the count is exact.
    """
    t, need, checked = result.teacher, extract_cfg.min_speedup, []
    cost = cost_key(t)
    order = ranked(result.candidates, t, cost, need, by="error" if cfg.pick == "quality" else "w")
    settings, T = extract_cfg.latency, Arch(t["D"], t["A"], t["H"], t["I"])
    for b in order:
        arch, estimate, timed = Arch(b["D"], b["A"], b["H"], b["I"]), speedup(b, t, cost), None
        if cost == "latency_ms":
            teacher_ms, ms = time_side_by_side(config, [T, arch], settings, work=extract_cfg.out)
            timed = teacher_ms / ms
            checked.append({"arch": arch.key, "error": b["error"], "speedup_estimate": estimate, "speedup_timed": timed})
            tqdm.write(f"  ⟨{arch.key}⟩ (ê {b['error']:.4g}): {timed:.2f}× the teacher timed side by side on {settings.runtime_name} "
                       f"(î {estimate:.2f}×; needs {need:.2f}×)", file=sys.stderr)
            if not fast_enough(teacher_ms, ms, need):
                continue
        return {"arch": arch.key, "params": b["params"], "teacher_params": t["params"], "speedup_estimate": estimate,
                "speedup_timed": timed, "checked": checked, "error": b["error"], "error_kind": result.error_kind}
    fastest = max((c["speedup_timed"] for c in checked), default=0.0)
    raise BortError(f"none of the {len(order)} trained candidates is {need:.2f}× faster than the teacher timed side by side on "
                    f"{settings.runtime_name} (the fastest: {fastest:.2f}×); lower --min-speedup or --speedup-margin")


def _rates(folder: Path, optim: OptimConfig, lrs: tuple[float, ...]) -> list[tuple[Path, OptimConfig]]:
    """One (folder, optimiser settings) per rate of a grid, in ``folder``/lr<rate>; without a grid, ``folder`` at ``optim``'s rate."""
    return [(folder / f"lr{lr:g}", replace(optim, lr=lr)) for lr in lrs] or [(folder, optim)]


def _finetunes(cfg: CompressConfig, data: dict, given: str | None, student: Path, folder: Path, device: str,
               common: dict) -> tuple[list[FinetuneConfig], list[FinetuneConfig]]:
    """The fine-tuning configs of one task, in ``folder`` (RUN/finetune/<task>): the teacher's, one per ``--teacher-lrs`` rate (none
    where ``given``), and the student's task distillation from it, one per ``--student-lrs`` rate (from the first teacher until
    :func:`_task` has chosen one). :func:`check` builds them before the first stage, the run for its stages."""
    base = cfg.finetune.replace(steps=cfg.finetune_steps, device=device, **data, **common)
    # New inputs are made for classification and regression (algorithms.md §4c); a multiple-choice task distils without them.
    augment = Augment() if data.get("task") and get_task(data["task"]).kind == "multiple_choice" else cfg.augment
    teachers = [] if given else [base.build(model=cfg.teacher, out=out, optim=optim, distill=TaskDistill(), augment=Augment())
                                 for out, optim in _rates(folder / "teacher", base.optim, cfg.teacher_lrs)]
    distill = replace(cfg.task_distill, teacher=given or str(teachers[0].out))
    students = [base.build(model=str(student), out=out, optim=optim, epochs=cfg.student_epochs, distill=distill, augment=augment,
                           group_by_length=cfg.student_grouped)
                for out, optim in _rates(folder / "student", replace(base.optim, lr=cfg.student_lr), cfg.student_lrs)]
    return teachers, students


def _tuned(ledger: Stages, folder: Path, configs: list[FinetuneConfig], what: str) -> tuple[FinetuneConfig, dict, dict[str, float]]:
    """Each fine-tuning of a grid (or the one) as a stage named by its place under RUN/finetune; the config of the best selection
    score (the mean of the task's metrics on the held-out slice; the first of equals), its report, and every run's score."""
    reports = {}
    for c in configs:
        stage = f"finetune/{c.out.relative_to(folder.parent)}"
        reports[c.out] = ledger.run(stage, c.out, lambda: finetune(c).to_dict(), c, what=f"{what} (lr {c.optim.lr:g})")
    scores = {str(out): task_score(r["selection"]) for out, r in reports.items()}
    best = max(configs, key=lambda c: scores[str(c.out)])
    return best, reports[best.out], scores


def _task(cfg: CompressConfig, ledger: Stages, out: Path, name: str, data: dict, given: str | None, student: Path, device: str,
          common: dict) -> dict:
    """Fine-tune the teacher (unless given), distil the student on the task, export it, and score the three and the trivial baseline
    on the split no stage chose on; the task's folders and figures. With --teacher-lrs or --student-lrs the best selection score of
    each grid goes on."""
    folder = out / "finetune" / name
    teachers, students = _finetunes(cfg, data, given, student, folder, device, common)
    tuned = {}  # each grid's selection scores, where there was a grid
    teacher_folder = given
    if teachers:
        chosen, _, tuned["teacher_selection"] = _tuned(ledger, folder, teachers, "fine-tune the teacher")
        teacher_folder = str(chosen.out)
    students = [replace(s, distill=replace(s.distill, teacher=teacher_folder)) for s in students]
    student_cfg, report, tuned["student_selection"] = _tuned(ledger, folder, students, "task-distil the student, with augmentation")
    student_out, export_out = student_cfg.out, out / "export" / name
    export_cfg = ExportConfig(model=str(student_out), out=export_out, quantize="int8")
    ledger.run(f"export/{name}", export_out, lambda: export_onnx(export_cfg).to_dict(), export_cfg, what="the student, int8 ONNX")
    scored_folder = out / "score" / name
    args = {"task": data.get("task"), "data": data.get("data"), "own": cfg.finetune.own, "train_examples": student_cfg.train_examples,
            "seed": student_cfg.subset_seed, "scored": report["scored"], "teacher": teacher_folder, "student": student_out, "export": export_out,
            "device": device, "out": scored_folder}
    entry = ledger.run(f"score/{name}", scored_folder, lambda: score_task(**args), args,
                       what="the teacher, the int8 student (the model that ships) and the fp32 student on the scored split, beside the trivial baseline")
    return {"task": data.get("task", name), **entry, "select_on": student_cfg.select_on, "teacher_folder": teacher_folder,
            **{k: v for k, v in tuned.items() if len(v) > 1}, "student_folder": str(model_dir(student_out)), "student_onnx": str(export_out)}


def check(cfg: CompressConfig, device: str) -> Path:
    """Refuse, before the first stage runs, what a later stage would refuse: the teacher's positions against the lengths, each task's
    data, each ``--task-teacher`` against its task and the teacher's tokenizer, ``--embedding-data``; and build each fine-tuning config
    the run will use (their own checks). Errors name compress's flags. Returns the teacher's folder."""
    teacher = resolve_model_path(cfg.teacher)
    config = read_config(teacher)
    limit = position_limit(config)
    # Each stage's options, checked as its config is built (the teacher's own shape stands for the extraction's choice).
    extract_config(cfg, cfg.out / "extract", str(teacher), device, {})
    pretrain_config(cfg, cfg.out / "pretrain", str(teacher), config_arch(config), device, {})
    cfg.bench.build(out=cfg.out / "bench", models=(str(teacher),))
    for flag, n in (("--seq-len", cfg.seq_len), ("--max-seq-len", cfg.finetune.max_seq_len), ("--bench-seq", cfg.bench.seq)):
        if n > limit:
            raise BortError(f"{flag} {n} is longer than the teacher's {limit} positions; use at most {limit}")
    jobs = cfg.jobs()
    if cfg.augment.inputs_file is not None and len(jobs) > 1:
        raise BortError("--augment-inputs holds the inputs of one task: give it with one --task, or with your own files")
    for name, data, given in jobs:
        _, (student, *_) = _finetunes(cfg, data, given, teacher, cfg.out / "finetune" / name, device, {})
        task = open_task(student.task, student.data, student.own)
        read = {split: task.split(split) for split in (("train", *task.spec.dev_splits) if student.data or student.own.given else ())}
        if cfg.augment.inputs_file is not None:  # the Hub's tasks are read (and their inputs checked) by the fine-tuning
            if task.spec.kind == "multiple_choice":
                raise BortError(f"--augment-inputs applies to classification and regression tasks; {task.spec.name} is multiple choice")
            if read.get("train"):
                cfg.augment.read_inputs(len(read["train"][0].texts), task.own.text_columns if task.own else None)
        if read.get("train") and student.augment.per_example_for(len(read["train"])):
            check_transform(student.augment.transform, student.augment.infill_model or student.model, len(read["train"][0].texts))
        if given:
            try:
                TaskTeacher(given, task.spec, teacher, device=torch.device("cpu"), max_len=student.max_seq_len, batch_size=1)
            except BortError as exc:  # TaskTeacher names it --task-teacher, a folder it cannot load by its path alone
                said = str(exc)
                raise BortError(said if "--task-teacher '" in said else f"--task-teacher '{given}': {said}") from None
            except (OSError, ValueError) as exc:  # transformers' own refusal of a folder without PyTorch weights
                raise BortError(f"--task-teacher '{given}' is not a fine-tuned PyTorch model folder ({str(exc).splitlines()[0]})") from None
    if cfg.embedding_task and cfg.embedding_data:
        task = open_task(cfg.embedding_task, cfg.embedding_data, OwnData())
        task.split(task.spec.dev_splits[0])
    return teacher
