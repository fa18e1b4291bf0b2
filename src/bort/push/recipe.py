"""``bort push FOLDER REPO_ID``: upload a model folder's model files to the Hugging Face Hub, through ``huggingface_hub``.

What is uploaded is what loads the model (:func:`files_to_push`; a run folder's is its ``model/``): the Hugging Face files (config, weights, tokenizer),
the model card, an export's ``model.onnx`` and ``export.json``, and the sentence-transformers files with their module
folders. A run's own files beside them (``checkpoint/``, logs, settings, TensorBoard events, Agora's rounds) stay
home. The verbs that write a model take ``--push-to-hub REPO_ID`` (:class:`HubOptions`) and push it when they finish.
Without a token or a network, the push is refused in one line before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bort.errors import BortError, shown
from bort.models.card import CARD
from bort.models.loading import ONNX_FILE, model_dir, model_files
from bort.models.runtime import EXPORT_INFO
from bort.models.sentence import sentence_files
from bort.options import opt
from bort.records import Record

PRIVATE = opt("create the repository private (an existing repository keeps its visibility)")
REVISION = opt("the branch to push to, created from main if it is new (default: main)", metavar="BRANCH")


@dataclass(frozen=True)
class PushConfig:
    """``bort push``: what to upload, and where."""

    # the two positionals of `bort push` (cli.py adds them: bort.options makes flags only)
    folder: Path = field(metadata=opt("a model folder bort wrote (pretrain, finetune, export, …)", cli=False))
    repo_id: str = field(metadata=opt("the Hub repository, e.g. your-name/minilm-rte-int8 (created if it does not exist)", cli=False))
    private: bool = field(default=False, metadata=PRIVATE)
    revision: str | None = field(default=None, metadata=REVISION)

    def __post_init__(self) -> None:
        check_repo_id(self.repo_id, "REPO_ID")


@dataclass(frozen=True)
class HubOptions:
    """``--push-to-hub REPO_ID`` on the verbs that write a model: push it when the verb has finished."""

    push_to_hub: str | None = field(default=None, metadata=opt("when done, push the model (its model files only) to this Hugging Face "
                                                               "Hub repository, as `bort push` does", metavar="REPO_ID",
                                                               aliases=("--push_to_hub",)))
    hub_private: bool = field(default=False, metadata=PRIVATE)
    hub_revision: str | None = field(default=None, metadata=REVISION)

    def __post_init__(self) -> None:
        if self.push_to_hub is not None:
            check_repo_id(self.push_to_hub, "--push-to-hub")

    def check(self) -> None:
        """Before the verb's work: with ``--push-to-hub``, a token must be at hand (a long run would find out only at the end)."""
        if self.push_to_hub:
            _token(f"give --push-to-hub only then, or push later with `bort push FOLDER {self.push_to_hub}`")

    def config(self, folder: Path, suffix: str = "") -> PushConfig | None:
        """The push of ``folder`` to ``--push-to-hub`` (with ``suffix`` after its name: compress's int8 export), or None."""
        if not self.push_to_hub:
            return None
        return PushConfig(Path(folder), self.push_to_hub + suffix, private=self.hub_private, revision=self.hub_revision)

    def students(self, folders: dict[str, tuple[str, str]]) -> list[PushConfig]:
        """compress's pushes: each task's (name → (student folder, int8 export)) student to REPO_ID and its export to
        REPO_ID-int8; with several tasks, under REPO_ID-<task> (the task's last name part) and REPO_ID-<task>-int8."""
        configs = []
        for name, (folder, onnx) in folders.items():
            tag = f"-{name.rsplit('/', 1)[-1]}" if len(folders) > 1 else ""
            configs += [self.config(Path(folder), tag), self.config(Path(onnx), f"{tag}-int8")]
        return [c for c in configs if c is not None]


@dataclass(frozen=True)
class PushResult(Record):
    """What was pushed: the repository, its URL and commit, and the files, relative to the folder."""

    repo_id: str
    url: str
    commit: str | None
    files: list[str]


def check_repo_id(repo_id: str, flag: str) -> None:
    """Refuse what cannot be a Hub repository name (``owner/name`` or ``name``), naming ``flag``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise BortError(f"{flag} must be a Hub repository name such as your-name/my-model, got {shown(repo_id)}") from None


def _token(then: str) -> None:
    """Refuse, in one line ending with ``then``, where no Hugging Face token is at hand."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise BortError(f"no Hugging Face token: run `hf auth login` (or set HF_TOKEN); {then}")


def files_to_push(folder: Path) -> list[str]:
    """The files of ``folder``'s model (a run folder's ``model/``), relative to it: the Hugging Face files
    (:func:`~bort.models.loading.model_files`), the card, an export's graph and ``export.json``, and the
    sentence-transformers files and module folders. A folder with neither weights nor a graph is refused."""
    if not Path(folder).is_dir():
        raise BortError(f"{shown(folder)} is not a folder: give a model folder bort wrote")
    folder = model_dir(folder)
    names = [f.name for f in model_files(folder)]
    names += [name for name in (CARD, ONNX_FILE, EXPORT_INFO) if (folder / name).is_file()]
    names += [name for name in sentence_files(folder) if (folder / name).is_file()]
    if not any(n.endswith((".safetensors", ".bin", ".onnx")) for n in names) or "config.json" not in names:
        raise BortError(f"{shown(folder)} holds no model (config.json and weights or model.onnx): give the folder of "
                        "`bort pretrain`, `bort finetune` or `bort export`")
    return sorted(set(names))


def push(cfg: PushConfig) -> PushResult:
    """Create the repository (and the branch) if need be, then upload :func:`files_to_push` in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi

    names, folder = files_to_push(cfg.folder), model_dir(cfg.folder)
    _token(f"then push with `bort push {cfg.folder} {cfg.repo_id}`")
    api = HfApi()
    try:
        url = api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True)
        if cfg.revision:
            api.create_branch(cfg.repo_id, branch=cfg.revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in names]
        commit = api.create_commit(cfg.repo_id, operations, commit_message=f"Upload {Path(cfg.folder).name} with bort push",
                                   revision=cfg.revision)
    except Exception as exc:  # noqa: BLE001 - offline, a refused token, a name taken: huggingface_hub's own types, and httpx's
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BortError(f"cannot push to {cfg.repo_id} on the Hugging Face Hub ({reason}); check the network, your token "
                        "(`hf auth login`) and the repository name, then push again with `bort push`") from None
    return PushResult(repo_id=cfg.repo_id, url=str(url), commit=getattr(commit, "oid", None), files=names)
