"""Unlabelled inputs for a scoreboard task's `--augment-inputs` (issue 38's transfer-set lever), from the shared data.

    python benchmarks/transfer_inputs.py --task mrpc      # or cola, qnli; into benchmarks/out/transfer/TASK.jsonl

A user with a small labelled set usually has more inputs of its kind without labels. For MRPC (news sentence pairs) the
shared data holds MRPC's own test pairs (1,725, scored nowhere here) and STS-B's sentence pairs (news, captions,
forums); the teacher labels them in the run. For CoLA (single sentences, most of them short) the shared data holds no
unlabelled set of its kind: natural sentences of the NLTK corpora (news transcripts, web text, speeches) of CoLA's
lengths stand in, a seeded 8,000. QNLI pairs a SQuAD question with a sentence of its Wikipedia article; here its training
questions are paired again, each with the two training sentences (of other pairs) and the one WikiText-103 sentence that
share the most of its rarer words (an IDF-weighted overlap, as a search engine would rank them): new pairs on the
question's topic that the teacher labels, most of them not answers. An input with a text near one of the task's scored dev split is left out: its words
(lower-cased letters and digits) and a dev text's overlap by a Jaccard index of 0.8 or more. Exact equality is not
enough: STS-B's MSRpar pairs and MRPC's test pairs come from the corpus MRPC's dev set was drawn from, and two of their
pairs were MRPC dev pairs up to punctuation and brackets ("Index .SPX" against "Index <.SPX>").
Writes JSON lines of ``text_a``/``text_b`` (``text`` for one text), in a fixed order: the same file on every machine.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from common import GLUE, OUT, SHARED
from scoreboard import JOBS

from bort.atomic import atomic_write_text
from bort.data.retrieval import TextIndex, words
from bort.data.sentences import split_sentences
from bort.tasks.registry import read_split

# task → (task, folder, split) whose inputs, labels unused, make its transfer set; ("corpus", folder, n): n of its sentences
# (RTE's pairs, long premises of another kind, are left out: they would double the training time of a run)
SOURCES = {"mrpc": (("glue/mrpc", GLUE / "MRPC", "test"), ("glue/stsb", GLUE / "STS-B", "train"), ("glue/stsb", GLUE / "STS-B", "dev")),
           "cola": (("corpus", SHARED / "corpus" / "nltk", 8000),),
           "qnli": (("retrieved", SHARED / "qnli-from-dev", "train"),)}
WORDS = (3, 25)  # CoLA's sentences: 3 to 25 words (a few are longer)
NEAR = 0.8  # a text whose words overlap a dev text's this much (Jaccard) is that text
RETRIEVED = {"train": 2, "wikitext-103": 1}  # QNLI: sentences paired with each training question, from each pool
COMMON = 0.02  # a word in more than this share of a pool's sentences does not count towards a match (stop words)


def _text(path: Path) -> str:
    """A file's text: UTF-8, else Latin-1 (a dozen of the NLTK corpora's files are Latin-1, which bort's corpus reader refuses)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _corpus_sentences(folder: Path, n: int) -> list[tuple[str]]:
    """A seeded ``n`` of the sentences of the corpus's .txt files of :data:`WORDS` words, each once, in the corpus's order."""
    texts = [_text(path) for path in sorted(folder.rglob("*.txt"))]
    sentences = dict.fromkeys(s for text in texts for s in split_sentences(text) if WORDS[0] <= len(s.split()) <= WORDS[1])
    pool = list(sentences)
    keep = sorted(random.Random(0).sample(range(len(pool)), min(n, len(pool))))
    return [(pool[i],) for i in keep]


def _detokenized(text: str) -> str:
    """WikiText's tokenised text as prose: ``a @-@ b`` → ``a-b``, no space before punctuation or inside brackets."""
    text = re.sub(r" @(.)@ ", r"\1", text)
    text = re.sub(r" ([.,;:!?)\]'%])", r"\1", text)
    return re.sub(r"([(\[$]) ", r"\1", text).replace(" n't", "n't")


def _wikitext_sentences() -> list[str]:
    """The sentences of the shared WikiText-103 files (headings and sentences with an ``<unk>`` left out), as prose, each once,
    in the files' order."""
    folder = SHARED / "corpus" / "wikitext-103"
    lines = [line for path in sorted(folder.glob("*.tokens")) for line in _text(path).splitlines() if not line.lstrip().startswith("=")]
    return list(dict.fromkeys(_detokenized(s) for line in lines for s in split_sentences(line)
                              if WORDS[0] <= len(s.split()) <= 60 and "<unk>" not in s))


def _best_matches(queries: list[str], pool: list[str], k: int, skip: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Each query with the ``k`` texts of ``pool`` that share the most of its rarer words (bort's
    :class:`~bort.data.retrieval.TextIndex`, words in more than :data:`COMMON` of the pool left out), none of ``skip[query]``."""
    index, pairs = TextIndex(pool, common=COMMON), []
    for query in queries:
        found = [pool[i] for i in index.ranked(query) if pool[i] not in skip.get(query, ())]
        pairs += [(query, text) for text in found[:k]]
    return pairs


def _retrieved_pairs(task: str, folder: Path, split: str) -> list[tuple[str, str]]:
    """The split's questions (each once), each paired by :func:`_best_matches` with sentences of the split's other pairs and of
    WikiText-103 (:data:`RETRIEVED` of each)."""
    examples = read_split(task, folder, split)
    own: dict[str, set[str]] = {}
    for ex in examples:
        own.setdefault(ex.texts[0], set()).add(ex.texts[1])
    questions = list(own)
    sentences = list(dict.fromkeys(ex.texts[1] for ex in examples))
    return (_best_matches(questions, sentences, RETRIEVED["train"], own)
            + _best_matches(questions, _wikitext_sentences(), RETRIEVED["wikitext-103"], {}))


def _near(words: frozenset[str], scored: list[frozenset[str]]) -> bool:
    """Whether ``words`` overlap one of the ``scored`` texts' by a Jaccard index of :data:`NEAR` or more."""
    return any(len(words) * NEAR <= len(s) <= len(words) / NEAR and len(words & s) >= NEAR * len(words | s) for s in scored)


def transfer_inputs(job: str) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """The task's transfer inputs (none near a text of its dev split, none twice) and how many each source gave."""
    target = JOBS[job]
    scored = list({words(text) for ex in read_split(target.task, target.data, "dev") for text in ex.texts})
    inputs, counts = {}, {}
    for task, folder, split in SOURCES[job]:
        if task == "corpus":
            found, name = _corpus_sentences(folder, split), f"{folder.name} sentences"
        elif task == "retrieved":
            found, name = _retrieved_pairs(target.task, folder, split), f"{target.task}:{split} questions, retrieved sentences"
        else:
            found, name = [ex.texts for ex in read_split(task, folder, split)], f"{task}:{split}"
        kept = [texts for texts in found if not any(_near(words(t), scored) for t in texts)]
        counts[name] = counts.get(name, 0) + len(set(kept) - inputs.keys())
        inputs.update(dict.fromkeys(kept))
    return list(inputs), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(SOURCES), required=True)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/transfer/TASK.jsonl")
    args = ap.parse_args()
    out = args.out or OUT / "transfer" / f"{args.task}.jsonl"
    inputs, counts = transfer_inputs(args.task)
    keys = ("text",) if len(inputs[0]) == 1 else ("text_a", "text_b")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(json.dumps(dict(zip(keys, texts))) + "\n" for texts in inputs))
    print(f"{out}: {len(inputs)} inputs ({', '.join(f'{k} {n}' for k, n in counts.items())})")


if __name__ == "__main__":
    main()
