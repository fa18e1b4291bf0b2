"""The extraction recipe behind ``bort extract``, readable top to bottom:

teacher → corpus → store → space → p̂ and î for every ξ → FPTAS (ê for the representatives)
→ result.json, candidates.csv, pareto.png, report.md and the ``best/`` student folder.
"""

from __future__ import annotations

import functools
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from bort.arch import Arch
from bort.data.corpus import CORPUS, SEQ_LEN, PackedCorpus, load_corpus
from bort.errors import BortError
from bort.extract.backends import Backend, BackendConfig, open_backend
from bort.extract.fptas import Candidate, fptas, maximal, size_speed_factor, w_coefficient
from bort.extract.pareto import check_min_speedup, fast_enough
from bort.extract.report import ExtractResult, write_outputs
from bort.extract.space import load_space
from bort.extract.store import RunStore
from bort.models.loading import TEACHER
from bort.models.sentence import read_pooling
from bort.models.slices import INITS, uses_teacher
from bort.models.teacher import Teacher, load_teacher
from bort.options import nested, opt
from bort.shared import DEVICE, NO_TRACKER, PROGRESS, REPORT_TO, SEED, resolve_device
from bort.surrogates.error import ERROR_KINDS, ErrorSettings, ErrorSurrogate
from bort.surrogates.latency import LatencySettings, depth_anchors, flops, interpolate_depths, measure_latency
from bort.surrogates.params import count_params
from bort.teacher.prepare import TEACHER_MLM_DIR, HeadConfig, ensure_mlm_head
from bort.training.hparams import Theta
from bort.training.losses import LogitLoss
from bort.training.objectives import RepresentationLoss
from bort.training.run import RunFolder, fingerprint
from bort.training.tracking import check_tracking


@dataclass(frozen=True)
class ExtractConfig:
    """Everything ``bort extract`` takes; the defaults are the built-in main job."""

    out: Path = field(default=Path("runs/extract"), metadata=opt("run folder; re-running the same command resumes it", aliases=("--output_dir",)))
    teacher: str = field(default="minilm-l6", metadata=TEACHER)
    corpus: str = field(default="builtin", metadata=CORPUS)
    space: str = field(default="auto", metadata=opt("'auto' (from the teacher), 'bort-paper', or a YAML file of value lists D/A/H/I"))
    steps: int = field(default=50, metadata=opt("n: training steps per candidate for ê"))
    error: str = field(default="kl", metadata=opt("ê with a logit term: held-out KL(p_T‖p_S), the excess over the teacher's entropy; "
                                                   "or the cross-entropy H(p_T, p_S)",
                                                   choices=tuple(ERROR_KINDS)))
    # BENCHMARKS §8: ê of candidates started from the teacher's slices ranks shapes best (ρ 0.98 against 0.86 from random weights).
    init: str = field(default="auto", metadata=opt("the candidates' start for ê: slices of the teacher, seeded random weights, importance: "
                                                   "the teacher's slices keeping each layer's most important FFN units, or auto: "
                                                   "the teacher's slices where every shape of the space fits in it, else random",
                                                   choices=("auto", *INITS)))
    epsilon: int = field(default=8, metadata=opt("ε: interval size; 1 is exhaustive search"))
    refine: int = field(default=0, metadata=opt("also train every member of the K best intervals", metavar="K"))
    maximal: bool = field(default=False, metadata=opt("also train every eligible ξ that no other eligible ξ contains (as large or larger in "
                                                      "each of D, A, H, I): where the lowest ê within the budget lies"))
    seed: int = field(default=0, metadata=SEED)
    seq_len: int = field(default=128, metadata=SEQ_LEN)
    thetas: tuple[Theta, ...] = field(default=(Theta(),), metadata=opt(cli=False))  # the CLI: --theta FILE, or one θ from --lr …
    loss: LogitLoss = field(default_factory=LogitLoss)
    representation: RepresentationLoss = field(default_factory=RepresentationLoss)  # with --alpha-mlm 0 --alpha-kd 0: ê from representations
    eval_sequences: int = field(default=32, metadata=opt("held-out sequences that score ê"))
    latency: LatencySettings = field(default_factory=LatencySettings, metadata=nested(prefix="latency-"))
    max_params: int | None = field(default=None, metadata=opt("keep only ξ with at most this many parameters"))
    max_latency_ms: float | None = field(default=None, metadata=opt("keep only ξ at most this slow"))
    min_speedup: float | None = field(default=None, metadata=opt("keep only ξ at least this many times faster than T by î (latency, or FLOPs)",
                                                                 metavar="X"))
    head: HeadConfig = field(default_factory=HeadConfig, metadata=nested(prefix="head-", only=("steps",), inherit={"seed": "seed"}))
    device: str = field(default="cpu", metadata=DEVICE)
    backend: BackendConfig = field(default_factory=BackendConfig)
    progress: bool = field(default=True, metadata=PROGRESS)
    report_to: tuple[str, ...] = field(default=NO_TRACKER, metadata=REPORT_TO)

    def __post_init__(self) -> None:
        check_tracking(self)
        if self.init not in ("auto", *INITS):
            raise BortError(f"--init must be one of auto, {', '.join(INITS)}, got '{self.init}'")
        if self.epsilon < 1:
            raise BortError(f"--epsilon must be at least 1 (1 is exhaustive search), got {self.epsilon}")
        if self.refine < 0:
            raise BortError(f"--refine must be 0 or more, got {self.refine}")
        check_min_speedup(self.min_speedup)
        self.error_settings(init="random")  # validates n and the loss (auto is resolved by extract)
        if self.backend.kind == "ray" and self.device.startswith("cuda") and not self.backend.gpus_per_trial:
            raise BortError("with --backend ray, --device is the driver's: add --gpus-per-trial (e.g. 1) to train the candidates on GPUs")

    def error_settings(self, init: str | None = None) -> ErrorSettings:
        """ê's settings, from the run's; ``init`` stands in for ``--init`` (which extract resolves when it is auto)."""
        return ErrorSettings(steps=self.steps, seed=self.seed, thetas=self.thetas, loss=self.loss, eval_sequences=self.eval_sequences,
                             kind=self.error, init=init or self.init, representation=self.representation)

    @property
    def training_device(self) -> str:
        """Where the candidates train: ``--device``, or the tasks' own GPUs with ``--backend ray --gpus-per-trial``."""
        return "cuda" if self.backend.gpus_per_trial > 0 else self.device


def _measure(cfg: ExtractConfig, teacher: Teacher, archs: list[Arch], store: RunStore) -> dict[Arch, float]:
    """î in milliseconds for every ξ (and T), from the store or measured now and stored.

    Always here, on the driver, on the target device the user named: never on the workers, whose
    hardware may differ. The store records the device and the host. On PyTorch every ξ is timed;
    on ONNX Runtime, where each ξ costs an export, T and each width's shallowest and deepest ξ are,
    and the depths between are interpolated (:func:`~bort.surrogates.latency.interpolate_depths`).
    """
    settings, key = cfg.latency, cfg.latency.key
    device = f"{settings.device_name()} on {socket.gethostname()}"
    if settings.runtime == "torch":
        timed, measure = archs, measure_latency
    else:
        from bort.bench.timing import measure_onnx_latency  # ONNX Runtime and the exporter, only where asked for

        timed, measure = [archs[0], *depth_anchors(archs[1:])], functools.partial(measure_onnx_latency, work=cfg.out)
    out = {}
    bar = tqdm(timed, desc=f"latency ({settings.runtime})", unit="ξ", disable=not cfg.progress, leave=False)
    for arch in bar:
        ms = store.latency(arch.key, key)
        if ms is None:
            bar.set_postfix_str(str(arch))
            ms = measure(teacher.config, arch, settings)[0]
            store.put_latency(arch.key, key, device, ms)
        out[arch] = ms
    return {archs[0]: out[archs[0]], **interpolate_depths(archs[1:], out)}


def _larger(archs: list[Arch], T: Arch) -> Arch | None:
    """A shape of ``archs`` that does not fit in the teacher's slices (deeper, wider or with a larger FFN), if any."""
    return next((a for a in archs if a.D > T.D or a.H > T.H or a.I > T.I), None)


def _init(init: str, archs: list[Arch], T: Arch) -> str:
    """``--init`` resolved: ``auto`` is ``teacher`` where every shape fits in the teacher, else ``random`` (said on stderr)."""
    larger = _larger(archs, T)
    if uses_teacher(init) and larger is not None:
        raise BortError(f"--init {init}: ⟨{larger.key}⟩ of the space is larger than the teacher ⟨{T.key}⟩ in D, H or I; "
                        "use --init random (or auto) or a smaller space")
    if init != "auto":
        return init
    if larger is not None:
        print(f"extract: ⟨{larger.key}⟩ of the space is larger than the teacher ⟨{T.key}⟩, so the candidates start from random weights "
              "(--init auto)", file=sys.stderr)
    return "random" if larger is not None else "teacher"


def extract(cfg: ExtractConfig) -> ExtractResult:
    """Run the FPTAS of algorithms.md §3 and write the run folder; returns ``result.json``'s record."""
    cfg = replace(cfg, device=str(resolve_device(cfg.device)))
    with RunFolder(cfg.out, "extract", marker=RunStore.FILENAME, report_to=cfg.report_to,
                   inputs=(cfg.teacher, cfg.corpus, cfg.space)) as run:  # locked while this call runs
        return _extract(cfg, run)


def _extract(cfg: ExtractConfig, run: RunFolder) -> ExtractResult:
    out = run.out
    started = time.time()
    store = RunStore(out)
    try:
        teacher = load_teacher(cfg.teacher, device=cfg.device)
        space = load_space(cfg.space, teacher.arch)
        p_teacher = count_params(teacher.config, teacher.arch).total  # S needs ξ smaller than T (fptas.size_speed_factor): before any work
        if all(count_params(teacher.config, a).total >= p_teacher for a in space.archs(exclude=teacher.arch)):
            raise BortError(f"no architecture of the space is smaller than the teacher ⟨{teacher.arch.key}⟩; widen the space towards fewer or "
                            "narrower layers")
        cfg = replace(cfg, init=_init(cfg.init, space.archs(exclude=teacher.arch), teacher.arch))
        settings = {"teacher": cfg.teacher, "corpus": cfg.corpus, "seq_len": cfg.seq_len, "head": asdict(cfg.head), "device": cfg.training_device}
        store.check_settings(fingerprint({**settings, **cfg.error_settings().fingerprint()}))
        if cfg.backend.kind == "ray":
            from bort.extract.ray_backend import check_address

            check_address(cfg.backend.address)  # before the long set-up, not after it
        teacher.check_seq_len(cfg.seq_len, "--seq-len")
        if cfg.latency.mode == "measured":
            teacher.check_seq_len(cfg.latency.seq, "--latency-seq")
        corpus = load_corpus(cfg.corpus, teacher.tokenizer, seq_len=cfg.seq_len)
        source_path = teacher.path
        if cfg.loss.active:  # ê from representations needs no masked-LM head
            teacher = ensure_mlm_head(teacher, corpus, out / TEACHER_MLM_DIR, cfg.head, device=cfg.device)
        T = teacher.arch
        p_t = count_params(teacher.config, T)
        archs = [a for a in space.archs(exclude=T) if cfg.max_params is None or count_params(teacher.config, a).total <= cfg.max_params]
        if not archs:
            raise BortError(f"no architecture of the space has at most --max-params {cfg.max_params} parameters; raise the limit")

        measured = cfg.latency.mode == "measured"
        latency = _measure(cfg, teacher, [T, *archs], store) if measured else {}
        if cfg.max_latency_ms is not None:
            if not measured:
                raise BortError("--max-latency-ms needs measured latency: drop --latency flops")
            archs = [a for a in archs if latency[a] <= cfg.max_latency_ms]
            if not archs:
                raise BortError(f"no architecture of the space runs within --max-latency-ms {cfg.max_latency_ms}; raise the limit")

        def cost(a: Arch) -> float:
            return latency[a] if measured else flops(a, seq=cfg.latency.seq, batch=cfg.latency.batch)

        if cfg.min_speedup is not None:
            archs = [a for a in archs if fast_enough(cost(T), cost(a), cfg.min_speedup)]
            if not archs:
                raise BortError(f"no architecture of the space is --min-speedup {cfg.min_speedup:g}× faster than the teacher "
                                f"by {'latency' if measured else 'FLOPs'}; lower it")

        candidates = []
        for a in archs:
            p = count_params(teacher.config, a)
            candidates.append(
                Candidate(
                    arch=a, params=p.total, params_effective=p.effective, cost=cost(a),
                    flops=flops(a, seq=cfg.latency.seq, batch=cfg.latency.batch), latency_ms=latency.get(a),
                    s=size_speed_factor(p.total, cost(a), p_t.total, cost(T)),
                )
            )

        error_fn = _ErrorFunction(cfg, teacher, corpus, store, n_intervals=-(-sum(c.eligible for c in candidates) // cfg.epsilon), run=run)
        try:
            result = fptas(candidates, error_fn, epsilon=cfg.epsilon, refine=cfg.refine, also=maximal(candidates) if cfg.maximal else [])
        finally:
            error_fn.close()
        if result.best is None and result.trained:
            raise BortError(f"every one of the {len(result.trained)} trained candidates diverged; lower the learning rate (--lr or --theta)")
        if result.best is None:
            raise BortError("no candidate is both smaller and faster than the teacher; widen the space or use --latency flops")
        return write_outputs(
            out, cfg=cfg, teacher=teacher, teacher_path=source_path, corpus=corpus, space=space, result=result,
            teacher_row={**T.asdict(), "params": p_t.total, "params_effective": p_t.effective, "latency_ms": latency.get(T),
                         "flops": flops(T, seq=cfg.latency.seq, batch=cfg.latency.batch), "error_floor": error_fn.floor(),
                         "entropy": error_fn.entropy()},
            latency_device=store.latency_device(cfg.latency.key) if measured else None,
            wall_s=time.time() - started,
        )
    except BaseException:
        if not store.has_results():  # a first run refused before any result: its store may go with the folder
            run.disposable |= {RunStore.FILENAME, f"{RunStore.FILENAME}-wal", f"{RunStore.FILENAME}-shm"}
        raise
    finally:
        store.close()


class _ErrorFunction:
    """ê for the search, a phase (batch of candidates) at a time: min over Θ, each (ξ, θ) read from
    the store or trained on the backend. Only this driver writes the store, each result as it arrives, and
    sends it to the run's tracker (``--report-to``), with the count of trainings in the store as the step.
    """

    def __init__(self, cfg: ExtractConfig, teacher: Teacher, corpus: PackedCorpus, store: RunStore, n_intervals: int, run: RunFolder):
        self.cfg, self.teacher, self.corpus, self.store, self.run = cfg, teacher, corpus, store, run
        self.trials = len(store.trials())
        self._surrogate: ErrorSurrogate | None = None
        self._backend: Backend | None = None
        self.bar = tqdm(total=n_intervals, desc="candidates", unit="ξ", disable=not cfg.progress)

    def surrogate(self) -> ErrorSurrogate:
        if self._surrogate is None:
            pooling = read_pooling(self.teacher.path) if self.cfg.representation.alpha_embed else None
            self._surrogate = ErrorSurrogate(self.teacher, self.corpus, self.cfg.error_settings(), device=self.cfg.device, pooling=pooling)
        return self._surrogate

    def floor(self) -> float:
        """The lowest reachable ê (the teacher's entropy for CE, else 0): reported even when nothing was trained now."""
        return self.surrogate().floor()

    def entropy(self) -> float | None:
        """The teacher's mean entropy on the held-out masked positions (None for ê from representations)."""
        return self.surrogate().entropy()

    def backend(self) -> Backend:
        """Started on the first training, so a fully resumed run starts no workers and no cluster."""
        if self._backend is None:
            self._backend = open_backend(self.cfg.backend, self.surrogate(), self.cfg.device)
        return self._backend

    def __call__(self, batch: list[Candidate]) -> list[float]:
        thetas = self.cfg.thetas
        jobs = [(c.arch, t) for c in batch for t in thetas if self.store.trial(c.arch.key, t.key) is None]
        left = Counter(arch for arch, _ in jobs)
        self.bar.total = max(self.bar.total, self.bar.n + len(batch))  # refinement trains more than the planned representatives
        self.bar.update(len(batch) - len(left))  # already in the store
        by_arch = {c.arch: c for c in batch}
        for trial in self.backend().map(jobs) if jobs else ():
            self.store.put_trial(trial.arch.key, trial.theta.key, trial.error, trial.seconds, trial.worker)
            self.trials += 1
            c = by_arch[trial.arch]
            self.run.track({"error": trial.error, "params": c.params, "latency_ms": c.latency_ms, "flops": c.flops, "s": c.s,
                            "w": w_coefficient(c.s, trial.error)}, self.trials, prefix="trial/")
            left[trial.arch] -= 1
            if not left[trial.arch]:
                self.bar.set_postfix_str(str(trial.arch))
                self.bar.update(1)
        return [min(self.store.trial(c.arch.key, t.key) for t in thetas) for c in batch]

    def close(self) -> None:
        """Stop the backend's workers (and a Ray cluster it started)."""
        if self._backend is not None:
            self._backend.close()
        self.bar.close()
