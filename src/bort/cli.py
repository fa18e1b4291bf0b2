"""The ``bort`` command line: a thin skin over the library API, one verb per pipeline stage.

Each verb's options are generated from its config dataclass (:mod:`bort.options`), so each default
is written once and ``--help`` shows it; every verb also takes ``--config FILE.yaml``. Every user
error surfaces as one line ``bort: error: …`` and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import sys
import threading
import typing
from pathlib import Path

from bort import __version__, options
from bort.errors import BortError, one_line, shown


def cmd_extract(args: argparse.Namespace) -> int:
    from bort.extract.recipe import ExtractConfig, extract
    from bort.surrogates.error import THETA_FIELDS
    from bort.training.hparams import Theta, load_thetas

    thetas = load_thetas(args.theta, allowed=THETA_FIELDS) if args.theta else (Theta(lr=args.lr, batch_size=args.batch_size, warmup=args.warmup),)
    result = extract(options.build(ExtractConfig, args, thetas=thetas))
    b, t = result.best, result.teacher
    print(
        f"best ⟨{b['D']},{b['A']},{b['H']},{b['I']}⟩: W={b['w']:.4g}, {b['params']:,} params ({100 * b['params'] / t['params']:.1f}% of T), "
        f"ê={b['error']:.4f}; trained {result.evaluated} of {result.space_size} candidates; wrote {args.out}/result.json and {args.out}/best"
    )
    return 0


def cmd_teacher_prepare(args: argparse.Namespace) -> int:
    from bort.teacher.prepare import PrepareConfig, prepare

    report = prepare(options.build(PrepareConfig, args))
    print(json.dumps({k: getattr(report, k) for k in ("mlm_accuracy_before", "mlm_accuracy", "heldout_sequences")}))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from bort.pretrain.recipe import PretrainConfig, pretrain
    from bort.training.losses import LogitLoss

    fixed = {"loss": LogitLoss(alpha_mlm=1.0, alpha_kd=0.0)} if args.loss == "mlm" else {}
    cfg, hub = options.build(PretrainConfig, args, **fixed), _hub(args)
    report = pretrain(cfg)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"steps": report.steps, "tokens_seen": report.tokens_seen, "output": report.output, **report.heldout}))
        _push(hub, cfg.out)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from bort.finetune.recipe import FinetuneConfig, finetune

    cfg, hub = options.build(FinetuneConfig, args), _hub(args)
    _note(cfg.distill.former_mix_note() if cfg.distill.teacher else None)
    if not args.agora:
        report = finetune(cfg)
        print(json.dumps({"task": report.task, "dev": report.dev, "baseline": report.baseline, "select_on": report.select_on,
                          "selection": report.selection, "best_step": report.best_step, "out": str(args.out)}))
        _push(hub, cfg.out)
        return 0
    from bort.agora.recipe import AgoraConfig, agora
    from bort.agora.thetas import load_agora_space

    result = agora(options.build(AgoraConfig, args, base=cfg, thetas=load_agora_space(args.agora_space)))
    print(json.dumps({"task": result.task, "dev": result.dev, "rounds": len(result.rounds), "best_round": result.best.round,
                      "best_theta": result.best.best_theta, "out": str(args.out)}))
    _push(hub, cfg.out)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bort.evaluate.recipe import EvaluateConfig, evaluate

    result = evaluate(options.build(EvaluateConfig, args))
    print(json.dumps(result.metrics))
    for f in result.files:
        print(f"wrote {f}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bort.export.onnx import ExportConfig, export_onnx

    cfg, hub = options.build(ExportConfig, args), _hub(args)
    info = export_onnx(cfg)
    check = info.check
    print(f"wrote {args.out} ({info.head}, {info.quantize}); checked against PyTorch ({check['gated_on'].replace('_', ' ')}): "
          f"{check['metric']} {check['error']:.2g} "
          f"(tolerance {check['tolerance']:g}); fused: {', '.join(f'{k} {v}' for k, v in info.fused_operators.items()) or 'none'}")
    _push(hub, cfg.out)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from bort.push import PushConfig, push

    result = push(options.build(PushConfig, args, folder=Path(args.folder), repo_id=args.repo_id))
    print(f"pushed {len(result.files)} files of {args.folder} to {result.url} ({', '.join(result.files)})")
    return 0


def _hub(args: argparse.Namespace):
    """The verb's ``--push-to-hub`` options, checked before its work (:meth:`~bort.push.HubOptions.check`)."""
    from bort.push import HubOptions

    hub = options.build(HubOptions, args)
    hub.check()
    return hub


def _push(hub, folder: Path) -> None:
    """Push ``folder`` to ``--push-to-hub``, if given."""
    cfg = hub.config(Path(folder))
    if cfg is not None:
        _pushed(cfg)


def _pushed(cfg) -> None:
    """Push as ``cfg`` says; one line on stderr says where."""
    from bort.push import push

    result = push(cfg)
    print(f"pushed {len(result.files)} files of {cfg.folder} to {result.url}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from bort.models.runtime import load_predictor
    from bort.predict.recipe import PredictRun, format_rows, predict

    run = options.build(PredictRun, args)
    torch.set_num_threads(run.threads)
    rows, metrics = predict(load_predictor(run.model, threads=run.threads), run.data)
    sys.stdout.write(format_rows(rows, run.output_format))
    if metrics is not None:
        print(json.dumps({"metrics": metrics}), file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bort.bench.recipe import BenchConfig, bench

    result = bench(options.build(BenchConfig, args))
    first = result.models[0]["name"]
    print(f"median latency, and speed-up over {first} on the same runtime:")
    for r in result.results:
        ratio = f"{r['speedup_vs_first']:.2f}×" if r["speedup_vs_first"] else "–"
        print(f"  batch {r['batch']:>3}  {r['runtime']:<10}  {r['model']:<40.40}  {r['median_ms']:9.2f} ms  {ratio}")
    for r in result.real:
        ratio = f"{r['speedup_vs_first']:.2f}×" if r["speedup_vs_first"] else "–"
        print(f"  texts, batch {r['batch']:>3}  {r['runtime']:<10}  {r['model']:<33.33}  {r['ms_per_sequence']:9.3f} ms/seq  {ratio}")
    print(f"wrote {args.out}/bench.json, bench.md, bench.png")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from bort.compress import CompressConfig, compress
    from bort.compress.report import summary

    cfg, hub = options.build(CompressConfig, args), _hub(args)
    _note(cfg.task_distill.former_mix_note(prefix="--task-"))
    result = compress(cfg)
    print("\n".join(summary(result)))
    print(f"wrote {args.out}/report.md, report.png, compress.json")
    students = {name: (t["student_folder"], t["student_onnx"]) for name, t in result.tasks.items()} or \
        {"": (result.student["student_folder"], result.student["student_onnx"])}
    for push_cfg in hub.students(students):
        _pushed(push_cfg)
    return 0


# A value that starts with '-' and is a number (scientific notation and inf included): a value, not an option.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (an unknown choice, a missing option) as the one line every other error makes, naming the
    verb's help instead of printing its usage; exit status 2 as before. Subcommand parsers are of this class too."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"bort: error: {one_line(message)}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``bort`` parser: one subcommand per stage, its options generated from the stage's config."""
    from bort.agora.recipe import AgoraConfig, AgoraMode
    from bort.bench.recipe import BenchConfig
    from bort.compress import CompressConfig
    from bort.evaluate.recipe import EvaluateConfig
    from bort.export.onnx import ExportConfig
    from bort.extract.recipe import ExtractConfig
    from bort.finetune.recipe import FinetuneConfig
    from bort.models.families import NAMES as FAMILY_NAMES
    from bort.predict.recipe import PredictRun
    from bort.pretrain.recipe import PretrainConfig
    from bort.push import HubOptions, PushConfig
    from bort.teacher.prepare import PrepareConfig
    from bort.training.hparams import Theta

    parser = _Parser(prog="bort", description=f"Extract, pretrain and ship small models of the {FAMILY_NAMES} families "
                                     "(the Bort method).")
    parser.add_argument("--version", action="version", version=f"bort {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def verb(name: str, config: type | None, func, help: str, description: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=description)
        p._negative_number_matcher = NEGATIVE_NUMBER  # argparse's own takes `--lr -1e-3` for a flag and prints its usage
        p.set_defaults(func=func)
        if config is not None:
            options.add_options(p, config)
        return p

    ex = verb("extract", ExtractConfig, cmd_extract, "find the optimal sub-architecture ⟨D,A,H,I⟩ of a teacher (the FPTAS)",
              "Find the optimal sub-architecture of a teacher for size, latency and error (algorithms.md §1-3).")
    th = ex.add_argument_group("training hyperparameters θ of the candidates (one set; or a file of several with --theta)")
    th.add_argument("--theta", help="YAML file of hyperparameter sets Θ (ê is the minimum over them): a list of {lr, batch_size, warmup} "
                    "sets, or a grid of value lists")
    options.add_options(th, Theta, skip=("weight_decay", "seed"))

    pt = verb("pretrain", PretrainConfig, cmd_pretrain, "pretrain an extracted architecture by distillation from the teacher",
              "Pretrain a student by knowledge distillation from the teacher (algorithms.md §4). "
              "Run it under `torchrun` or `accelerate launch -m bort pretrain` for data parallelism.")
    pt.add_argument("--loss", choices=("kd", "mlm"), default="kd", help="kd: distillation with the --alpha-* weights; mlm: self-supervised (default: kd)")

    ft = verb("finetune", FinetuneConfig, cmd_finetune, "fine-tune a model on a GLUE, SuperGLUE or RACE task",
              f"Fine-tune a model folder of the {FAMILY_NAMES} families on one task with a fresh head (algorithms.md §5); "
              "keeps the best model on the dev metric. Re-running the same command resumes it.")
    ag = ft.add_argument_group("Agora (algorithms.md §6): rounds of hyperparameter search, pruning and new training points")
    options.add_options(ag, AgoraMode)  # options, so that a --config file can ask for Agora too
    options.add_options(ag, AgoraConfig, skip=("base", "thetas"))

    verb("evaluate", EvaluateConfig, cmd_evaluate, "score a fine-tuned model, or write a leaderboard submission",
         "Print a fine-tuned model's official metrics on a split as JSON, and write leaderboard files "
         "(GLUE <Task>.tsv, SuperGLUE <Task>.jsonl, RACE JSON answers).")
    ex_ = verb("export", ExportConfig, cmd_export, "export a model to ONNX (fp32 or int8) for fast CPU inference",
         "Export a model folder of a family bort knows (bare encoder, masked-LM, classification or multiple-choice) to an optimised "
         "ONNX graph with dynamic batch and sequence axes, checked against PyTorch; the folder also gets the config and tokenizer.")
    verb("predict", PredictRun, cmd_predict, "predict labels with an ONNX export or a PyTorch folder",
         "Batched predictions with label names, as JSON lines or TSV on standard output.")
    verb("bench", BenchConfig, cmd_bench, "CPU latency and throughput on PyTorch and ONNX Runtime, fp32/bf16/int8",
         "Benchmark models on every runtime that applies (PyTorch fp32 and bf16 autocast, ONNX Runtime fp32 and int8), "
         "all in one interleaved run; writes OUT/bench.json, bench.md and bench.png.")

    cp = verb("compress", CompressConfig, cmd_compress, "one command: teacher (and tasks) → a fast student, with a report",
         "Extract the best student at least --min-speedup× faster, pretrain it from the teacher, fine-tune and distil it on each --task, "
         "export it to int8 ONNX and bench it against the teacher; writes OUT/report.md, report.png and compress.json. "
         "Re-running the same command resumes it stage by stage.")
    for p in (pt, ft, ex_, cp):  # the verbs that write a model
        options.add_options(p.add_argument_group("Hugging Face Hub"), HubOptions)
    ps = verb("push", None, cmd_push, "upload a model folder (its model files only) to the Hugging Face Hub",
              "Upload the model files of a folder bort wrote (config, weights, tokenizer, card, ONNX graph, sentence-transformers "
              "files; not its checkpoints, logs or settings) to a Hub repository, created if it does not exist.")
    ps.add_argument("folder", metavar="FOLDER", help="a model folder bort wrote (pretrain, finetune, export, …)")
    ps.add_argument("repo_id", metavar="REPO_ID", help="the Hub repository, e.g. your-name/minilm-rte-int8")
    options.add_options(ps, PushConfig)

    teacher = sub.add_parser("teacher", help="teacher utilities").add_subparsers(dest="teacher_command", required=True, metavar="ACTION")
    verb("prepare", PrepareConfig, cmd_teacher_prepare, "train a masked-LM head for a teacher without one (frozen encoder)",
         "Train a masked-LM head for a teacher without one, with the encoder frozen (algorithms.md §4).", parent=teacher)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bort`` command: every failure a user can fix ends as one line on stderr."""
    try:
        with _sigterm_as_interrupt():
            args = options.parse_args(build_parser(), argv)  # the parser is built inside: Ctrl-C while importing is one line too
            return args.func(args)
    except BortError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt as exc:
        print(f"bort: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}; run the same command again to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except Exception as exc:  # a fault of the machine (full disk, permissions, a symlink loop), not a bug of ours: no traceback
        fault = _fault(exc)
        if fault is None:
            raise
        return _fail(fault)


def _note(message: str | None) -> None:
    if message:
        print(f"bort: note: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"bort: error: {one_line(message)}", file=sys.stderr)
    return 2


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# What the libraries that write without Python's file objects (safetensors, torch's C++ writer) say on a full disk.
_DISK_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|os error (28|122)\b|StorageFull")


def _fault(exc: BaseException) -> str | None:
    """The one-line message for an operating-system fault, or None for anything else (a bug: its traceback shows).

    Any OSError raised to here is one; below another exception (a library that wrapped it), only a
    full disk, a refused permission or a symbolic-link loop is, so that a bug is never hidden.
    """
    if isinstance(exc, OSError):
        return _os_message(exc)
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if isinstance(exc, OSError) and exc.errno in (*_DISK_FULL, *_DENIED, errno.ELOOP):
            return _os_message(exc)
        if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from"):  # pathlib's resolve() before Python 3.13
            return f"{str(exc).split(' from ', 1)[1]} is a loop of symbolic links; give a real file or folder"
        if _DISK_FULL_TEXT.search(str(exc)[:10_000]):
            return "no space left on the device (or over the disk quota); free some space and run the same command again to resume"
        exc = exc.__cause__ or exc.__context__
    return None


def _os_message(exc: OSError) -> str:
    path = f" {shown(exc.filename)}" if exc.filename else ""
    if exc.errno in _DISK_FULL:
        folder = shown(Path(exc.filename).parent) if exc.filename else "its output folder"
        return f"no space left writing in {folder} ({exc.strerror}); free some space and run the same command again to resume"
    if exc.errno in _DENIED:
        return f"cannot write{path or ' a file'} ({exc.strerror}); give a folder you may write to, or fix its permissions"
    if exc.errno == errno.ELOOP:
        return f"{path.strip() or 'a path'} is a loop of symbolic links ({exc.strerror}); give a real file or folder"
    return f"{exc.strerror or exc}{' (' + path.strip() + ')' if path else ''}; check the path and its permissions"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (temporaries removed, locks freed)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`_Terminated` in this process (forked workers keep the default: they die)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers can only be set there
        yield
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:  # a forked worker inherited the handler: die as before
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
