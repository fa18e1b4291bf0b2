"""The ``README.md`` model card of every model folder bort writes (a Hugging Face model card).

Front matter through ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`: ``library_name`` (transformers;
sentence-transformers for a folder with ``modules.json``; onnx for an export without PyTorch weights), ``tags``,
``base_model`` (the Hub model at the start of the chain: a local source's own card names it, so a fine-tuned student or
its int8 export still names the teacher) with ``base_model_relation``, the teacher's ``license``, the ``datasets``
trained on, ``pipeline_tag`` where the head has one, and a ``model-index`` of the metrics measured on a task's split
(:class:`Scored`). Then what the model is (its source, architecture ⟨D,A,H,I⟩ and parameter count, the settings that
made it, its metrics, speed and latency where known) and how to load it: with transformers (a PyTorch folder), ONNX
Runtime and Optimum (an ONNX export), and sentence-transformers (a folder with ``modules.json``). A stage says what it
knows in a :class:`Card`; :meth:`Card.write` reads the rest from the folder, so the snippets match its files.
The card is bort's own file: it is written only into folders bort writes.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from bort import __version__
from bort.atomic import atomic_write_text
from bort.errors import BortError
from bort.models.families import config_arch
from bort.models.loading import ONNX_FILE, head_of, read_config, resolve_model_path, run_home

CARD = "README.md"
# The Hub repositories of bort's aliases, for ``base_model``.
HUB_NAMES = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
# What each command makes, completed with the source and task.
_WHAT = {
    "bort pretrain": "A student encoder distilled from {source} by `bort pretrain`.",
    "bort finetune": "{source} fine-tuned on {task} by `bort finetune`.",
    "bort finetune --agora": "{source} fine-tuned on {task} by Agora (`bort finetune --agora`): the best model of all its rounds.",
    "bort teacher prepare": "{source} with a masked-language-model head trained by `bort teacher prepare` (its encoder frozen).",
    "bort export": "An ONNX graph of {source}, made by `bort export`: fused by ONNX Runtime's transformer optimizer and checked against PyTorch.",
    "bort extract": "The student architecture that `bort extract` chose for {source}, with random weights: "
                    "pretrain it with `bort pretrain --student <this folder>`.",
}
# Per head (bort.models.loading.HEADS): the pipeline tag, the transformers class and the Optimum class.
_HEADS = {
    "classification": ("text-classification", "AutoModelForSequenceClassification", "ORTModelForSequenceClassification"),
    "multiple_choice": (None, "AutoModelForMultipleChoice", "ORTModelForMultipleChoice"),
    "masked_lm": ("fill-mask", "AutoModelForMaskedLM", "ORTModelForMaskedLM"),
    "encoder": ("feature-extraction", "AutoModel", "ORTModelForFeatureExtraction"),
}
# The relation of each command's output to its source (the Hub's base_model_relation); None: the same weights, or none of them.
_RELATION = {"bort pretrain": "finetune", "bort finetune": "finetune", "bort finetune --agora": "finetune", "bort teacher prepare": "finetune"}
# bort's metric names as the Hub's model-index spells them (the `evaluate` library's names)
_METRIC_TYPES = {"mcc": "matthews_correlation", "pearson": "pearsonr", "spearman": "spearmanr"}
_HIDDEN = ("out", "progress", "report_to", "logging_steps", "device", "eval_batch_size")  # settings (at any level) that do not change the model
_TEXT = "A sentence to encode."
# The newest stack that runs an export's model.onnx through Optimum (sentence-transformers' backend="onnx", ORTModelFor…):
# optimum-onnx needs transformers < 4.58, so it cannot share an environment with bort's transformers 5 (nor can
# sentence-transformers 6, whose own [onnx] extra does not resolve). Checked by benchmarks/st_onnx_stack.py, which builds it.
ONNX_STACK = ("sentence-transformers[onnx]==5.1.2", "transformers==4.57.6", "optimum-onnx[onnxruntime]==0.1.0")
_STACK = " ".join(f"'{p}'" for p in ONNX_STACK)


def hub_name(name: str | None) -> str | None:
    """The Hub repository of a model bort was given, or None for a folder of one's own: an alias's (by name or by its
    installed folder), a Hub download's (``…/models--org--name/snapshots/…``), or the name itself when it is no local
    folder (then bort fetched it from the Hub)."""
    if not name:
        return None
    if name in HUB_NAMES:
        return HUB_NAMES[name]
    path = Path(name).expanduser()
    if not path.exists():
        return name
    cached = next((p.name for p in path.resolve().parents if p.name.startswith("models--") and p.parent.name == "hub"), None)
    if cached:
        return cached.removeprefix("models--").replace("--", "/")
    for alias, hub in HUB_NAMES.items():
        with contextlib.suppress(BortError):  # the alias's package is not installed
            if resolve_model_path(alias).resolve() == path.resolve():
                return hub
    return None


def _front_matter(folder: Path):
    """The :class:`~huggingface_hub.ModelCardData` of a folder's README.md, or None (no card, or no front matter)."""
    from huggingface_hub import ModelCard

    path = Path(folder) / CARD
    if not path.is_file():
        return None
    with contextlib.suppress(Exception):  # a card that is not ours may be anything: then it tells nothing
        return ModelCard.load(path).data
    return None


def lineage(source: str | None, relation: str | None) -> dict:
    """``base_model``, ``base_model_relation``, ``license`` and ``datasets`` for a model made from ``source`` by a step of
    ``relation`` ("finetune", "quantized" or None): a Hub model (:func:`hub_name`) is the base itself, its license read
    from its card where it is at hand; a local folder passes on what its own card names (bort's cards do), so each hop
    back to the teacher keeps it. Fine-tuning anywhere on the way makes the whole relation "finetune"."""
    if not source:
        return {}
    folder = None
    with contextlib.suppress(BortError, OSError):
        folder = resolve_model_path(source)
    data = _front_matter(folder) if folder is not None else None
    got = data.to_dict() if data is not None else {}
    hub = hub_name(source)
    if hub:
        base, upstream, datasets = hub, None, []
    else:
        base, upstream, datasets = got.get("base_model"), got.get("base_model_relation"), list(got.get("datasets") or [])
    out = {"license": got.get("license"), "datasets": datasets}
    if base:
        out["base_model"] = base
        out["base_model_relation"] = "finetune" if "finetune" in (upstream, relation) else relation or upstream
    return {k: v for k, v in out.items() if v}


def count_params(folder: Path) -> int | None:
    """The parameters in the folder's safetensors files (each stored tensor once, tied ones too), read from their headers."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())  # noqa: SIM118 - a safetensors file, not a dict
    return total


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in settings.items():
        if k in _HIDDEN:
            continue
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {} if v is None else {f"{prefix}{k}": v})
    return out


def _number(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _table(head: tuple[str, str], rows: dict) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    return lines + [f"| {k} | {_number(v)[:200].replace('|', '/')} |" for k, v in rows.items()]


@dataclass(frozen=True)
class Scored:
    """Metrics measured on one split of a task's data: an entry of the card's model-index. ``dataset``: the Hub dataset
    (``nyu-mll/glue``; ``on_hub``) or one's own file's name; ``config``: its configuration (``rte``); ``split``: the Hub's
    name of the split (``validation``); ``task``: bort's name of the task; ``kind``: classification, regression or multiple_choice."""

    task: str
    kind: str
    dataset: str
    config: str | None
    split: str
    metrics: dict[str, float]
    on_hub: bool = True

    def results(self) -> list:
        """The entry as :class:`~huggingface_hub.EvalResult` objects, one per metric."""
        from huggingface_hub import EvalResult

        task_type = "multiple-choice" if self.kind == "multiple_choice" else "text-classification"
        return [EvalResult(task_type=task_type, dataset_type=self.dataset, dataset_name=self.task, dataset_config=self.config,
                           dataset_split=self.split, metric_type=_METRIC_TYPES.get(name, name), metric_name=name, metric_value=float(value))
                for name, value in self.metrics.items()]


@dataclass(frozen=True)
class Card:
    """What a stage knows about a model folder it writes.

    ``made_by`` is the command (a key of :data:`_WHAT`); ``source`` the model it came from (the
    teacher, the model fine-tuned or exported) as the user named it; ``metrics`` (name → number) are
    described by ``evaluation``; ``scored``: those measured on a task's split, for the model-index; ``latency``
    (setting → milliseconds) and ``speed`` (what → text, e.g. the speed-up over the teacher) where measured; ``params``
    where the folder has no safetensors weights (an ONNX export); ``quantized``: an int8 export (its base_model_relation).
    """

    made_by: str
    source: str | None = None
    task: str | None = None
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    evaluation: str = "Dev metrics"
    latency: dict = field(default_factory=dict)
    params: int | None = None
    scored: Scored | None = None
    speed: dict = field(default_factory=dict)
    quantized: bool = False

    def write(self, folder: str | Path, *, name: str | Path | None = None) -> None:
        """Write ``folder/README.md`` atomically; the load snippets name the folder as ``name`` (default: ``folder``;
        give the final path when ``folder`` is a temporary to be renamed)."""
        atomic_write_text(Path(folder) / CARD, self.text(Path(folder), name=str(name if name is not None else folder)))

    def text(self, folder: Path, *, name: str) -> str:
        """The card of ``folder``, as :meth:`write` writes it."""
        config = read_config(folder)
        head = head_of(config).kind
        onnx, sentence = (folder / ONNX_FILE).is_file(), (folder / "modules.json").is_file()
        weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model.bin*"))
        pipeline_tag = "sentence-similarity" if sentence and head == "encoder" else _HEADS[head][0]
        meta = self.card_data(name, pipeline_tag, library="sentence-transformers" if sentence else "transformers" if weights else "onnx",
                              tags=["bort", "distillation", *(["sentence-transformers"] if sentence else []), *(["onnx"] if onnx else [])])
        arch, params = config_arch(config), self.params or count_params(folder)
        source = f"`{self.source}`" if self.source else "its teacher"
        facts = {"made by": f"`{self.made_by}` (bort {__version__})", "source": source, "family": config.model_type,
                 "architecture ⟨D,A,H,I⟩": f"⟨{arch.key}⟩: depth {arch.D}, {arch.A} attention heads, hidden size {arch.H}, "
                                           f"feed-forward size {arch.I}",
                 **({"parameters": params} if params else {}), "head": head.replace("_", " "),
                 **({"labels": ", ".join(config.id2label[i] for i in sorted(config.id2label))} if config.num_labels > 1 and head == "classification" else {}),
                 **({"task": self.task} if self.task else {})}
        lines = ["---", meta.to_yaml(), "---", "",
                 f"# {_title(name)}", "", _WHAT[self.made_by].format(source=source, task=self.task or "its task"), "",
                 "## Model", "", *_table(("", ""), facts), ""]
        if self.metrics:
            lines += [f"## {self.evaluation}", "", *_table(("metric", "value"), self.metrics), ""]
        if self.speed:
            lines += ["## Speed", "", *_table(("", ""), self.speed), ""]
        lines += ["## Latency", ""]
        lines += [*_table(("setting", "ms"), self.latency), ""] if self.latency else \
            [f"Not measured here: `bort bench --models {name}` measures it on every runtime that applies.", ""]
        settings = _flat(self.settings)
        if settings:
            lines += ["## Settings", "", *_table(("setting", "value"), settings), ""]
        lines += ["## How to load it", "", *_snippets(name, head, config, weights=weights, onnx=onnx, sentence=sentence)]
        return "\n".join(lines).rstrip() + "\n"

    def card_data(self, name: str, pipeline_tag: str | None, *, library: str, tags: list[str]):
        """The front matter: :class:`~huggingface_hub.ModelCardData` with the lineage (:func:`lineage`), the task's
        dataset and the model-index of :attr:`scored`."""
        from huggingface_hub import ModelCardData

        relation = "quantized" if self.quantized else _RELATION.get(self.made_by)
        known = lineage(None if self.made_by == "bort extract" else self.source, relation)  # extract's folder: random weights
        scored = self.scored
        datasets = list(dict.fromkeys([*known.get("datasets", []), *([scored.dataset] if scored and scored.on_hub else [])]))
        return ModelCardData(library_name=library, tags=tags, license=known.get("license"), datasets=datasets or None,
                             base_model=known.get("base_model"), base_model_relation=known.get("base_model_relation"),
                             pipeline_tag=pipeline_tag, model_name=_title(name) if scored else None,
                             eval_results=scored.results() if scored else None)


def _title(name: str) -> str:
    """The model's name for its card: its folder's, or its run folder's for a run's ``model/``."""
    path = run_home(Path(name))
    return path.name or str(path)


def _snippets(name: str, head: str, config, *, weights: bool, onnx: bool, sentence: bool) -> list[str]:
    """Load snippets that match the folder: transformers where it has PyTorch weights, ONNX Runtime and Optimum
    where it has ``model.onnx``, sentence-transformers where it has ``modules.json``."""
    model = f"MODEL = {json.dumps(name)}"
    _, auto, ort_class = _HEADS[head]
    out = []
    if weights:
        out += ["With transformers:", "", "```python", *_transformers(head, config, model, auto), "```", ""]
    if onnx:
        batch = ["inputs = {k: v[None] for k, v in inputs.items()}  # one question: [1, choices, tokens]"] if head == "multiple_choice" else []
        out += ["With ONNX Runtime:", "", "```python", "import onnxruntime as ort", "from transformers import AutoTokenizer", "", model,
                "tokenizer = AutoTokenizer.from_pretrained(MODEL)", 'session = ort.InferenceSession(f"{MODEL}/model.onnx")',
                *_inputs(head, "np"), *batch, "names = [i.name for i in session.get_inputs()]",
                'outputs = session.run(None, {k: v.astype("int64") for k, v in inputs.items() if k in names})',
                "print(outputs[0].shape)", "```", "",
                f"With Optimum (in an environment of its own: `pip install {_STACK}`; it needs transformers < 4.58):", "",
                "```python", f"from optimum.onnxruntime import {ort_class}",
                "from transformers import AutoTokenizer, pipeline", "", model, f"model = {ort_class}.from_pretrained(MODEL)",
                "tokenizer = AutoTokenizer.from_pretrained(MODEL)", *_use(head, config, "model=model, tokenizer=tokenizer"), "```", ""]
    if sentence:
        # An export's graph runs only under backend="onnx" (Optimum's stack); its default backend would run the fp32 PyTorch
        # weights the folder also holds, so the card says which file runs, and shows the graph's.
        load = 'SentenceTransformer(MODEL, backend="onnx", model_kwargs={"file_name": "model.onnx"})' if onnx else "SentenceTransformer(MODEL)"
        note = ["The ONNX graph (`model.onnx`, the model measured here) runs under `backend=\"onnx\"`, in the stack Optimum needs: "
                f"`pip install {_STACK}` (an environment of its own: transformers < 4.58)." +
                (" `SentenceTransformer(MODEL)` without a backend runs the fp32 PyTorch weights the folder also holds "
                 "(`model.safetensors`), not the graph." if weights else ""), ""] if onnx else []
        out += ["With sentence-transformers (its pooling and normalisation, from `modules.json`):", "", *note, "```python",
                "from sentence_transformers import SentenceTransformer", "", model, f"model = {load}",
                f"embeddings = model.encode([{json.dumps(_TEXT)}])", "print(embeddings.shape)", "```", ""]
    return out


def _inputs(head: str, tensors: str) -> list[str]:
    """Tokenising an example: two choices for a multiple-choice head, one sentence otherwise."""
    extra = ", return_token_type_ids=True" if tensors == "np" else ""  # the ONNX graph takes them, RoBERTa's too
    if head == "multiple_choice":
        return ['question, choices = "Where do cats sleep?", ["On the mat.", "In the sky."]',
                f'inputs = tokenizer([question] * len(choices), choices, padding=True, return_tensors="{tensors}"{extra})']
    return [f'inputs = tokenizer([{json.dumps(_TEXT)}], padding=True, return_tensors="{tensors}"{extra})']


def _use(head: str, config, model_args: str) -> list[str]:
    """Running the model through a transformers pipeline (the heads that have one) or by hand (multiple choice)."""
    if head == "classification":
        scores = ', function_to_apply="none"' if config.num_labels == 1 else ""  # one output: a regression score, not a probability
        return [f'classifier = pipeline("text-classification", {model_args}{scores})', 'print(classifier("A sentence to classify."))',
                'print(classifier({"text": "A first sentence.", "text_pair": "A second one."}))  # a sentence pair']
    if head == "masked_lm":
        return [f'unmasker = pipeline("fill-mask", {model_args})', 'print(unmasker(f"Paris is the {unmasker.tokenizer.mask_token} of France."))']
    if head == "encoder":
        return [f'extractor = pipeline("feature-extraction", {model_args})', f'print(len(extractor({json.dumps(_TEXT)})[0]))  # tokens']
    return [*_inputs(head, "pt"), "logits = model(**{k: v[None] for k, v in inputs.items()}).logits  # [1, choices]",
            "print(logits.argmax(-1).item())"]


def _transformers(head: str, config, model: str, auto: str) -> list[str]:
    if head == "multiple_choice":
        return [f"from transformers import {auto}, AutoTokenizer", "", model, "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
                f"model = {auto}.from_pretrained(MODEL)", *_use(head, config, "")]
    return ["from transformers import pipeline", "", model, *_use(head, config, "model=MODEL")]
