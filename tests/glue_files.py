"""Small synthetic tasks in the official formats, learnable by rule (RTE-like: "not" in the hypothesis means not_entailment;
STS-B-like: the score counts "blue"; COPA-like: the right choice mentions "red"), and the tiny fine-tuning config the tests
share: so that tests can assert that fine-tuning learns, not only that it runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bort.finetune.recipe import FinetuneConfig
from bort.training.loop import OptimConfig

WORDS = "the cat dog bird sat ran on mat log tree house red blue green big small".split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_rte(folder: Path, n_train: int = 160, n_dev: int = 48, seed: int = 0) -> Path:
    """An RTE-format task: not_entailment exactly when the hypothesis ends with "not"."""
    rng = random.Random(seed)

    def rows(n: int, labelled: bool) -> str:
        lines = ["index\tsentence1\tsentence2" + ("\tlabel" if labelled else "")]
        for i in range(n):
            neg = rng.random() < 0.5
            label = "not_entailment" if neg else "entailment"
            lines.append(f"{i}\t{_sentence(rng, 8)}\t{_sentence(rng, 4)}{' not' if neg else ''}" + (f"\t{label}" if labelled else ""))
        return "\n".join(lines) + "\n"

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(rows(n_train, True), encoding="utf-8")
    (folder / "dev.tsv").write_text(rows(n_dev, True), encoding="utf-8")
    (folder / "test.tsv").write_text(rows(20, False), encoding="utf-8")
    return folder


def write_stsb(folder: Path, seed: int = 0) -> Path:
    """An STS-B-format task: the score is the number of "blue" in sentence 2 (0..5)."""
    rng = random.Random(seed)
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"

    def rows(n: int) -> str:
        out = [head]
        for i in range(n):
            k = rng.randint(0, 5)
            s2 = " ".join(["blue"] * k + [rng.choice(WORDS[:5]) for _ in range(6 - k)])
            out.append(f"{i}\tg\tf\t2012\t{i}\tnone\tnone\t{_sentence(rng, 5)}\t{s2}\t{k:.1f}")
        return "\n".join(out) + "\n"

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(rows(160), encoding="utf-8")
    (folder / "dev.tsv").write_text(rows(40), encoding="utf-8")
    return folder


def write_copa(folder: Path, seed: int = 0) -> Path:
    """A COPA-format task: the right choice is the one that mentions "red"."""
    rng = random.Random(seed)

    def rows(n: int, labelled: bool) -> str:
        out = []
        for i in range(n):
            right = rng.randint(0, 1)
            choices = [_sentence(rng, 3) + (" red" if j == right else " green") for j in range(2)]
            obj = {"premise": _sentence(rng, 6), "choice1": choices[0], "choice2": choices[1], "question": "effect", "idx": i}
            if labelled:
                obj["label"] = right
            out.append(json.dumps(obj))
        return "\n".join(out) + "\n"

    folder.mkdir(parents=True, exist_ok=True)
    for split, n, labelled in (("train", 120, True), ("val", 40, True), ("test", 10, False)):
        (folder / f"{split}.jsonl").write_text(rows(n, labelled), encoding="utf-8")
    return folder


def _cfg(model: Path, task: str, data: Path, out: Path, **kw) -> FinetuneConfig:
    base = dict(epochs=6, batch_size=16, max_seq_len=64, optim=OptimConfig(lr=1e-3, weight_decay=0.01, warmup=0.1), bf16="off",
                device="cpu", progress=False, patience=0)
    return FinetuneConfig(model=str(model), task=task, data=data, out=out, **{**base, **kw})
