"""New inputs made from existing ones: Agora's transformation f (algorithms.md §6, step 3) and ``bort finetune --augment``.

- ``mlm-infill`` (default): mask 15% of the tokens of each text and fill every masked position
  with the masked-LM's most likely token other than the original one, so each new input differs.
- ``dropout``: drop each word with probability 0.1 (at least one word, never all).
- ``swap``: swap one random pair of neighbouring words.
- ``pair-mix`` (issue 38): one side of a pair replaced by that side of another input (new pairs from the task's own
  texts, for the teacher to label); a single text becomes its first half of words followed by another's second half.
- ``segment-swap`` (issue 38): a pair's two segments in the other order (half the variants, drawn), then word dropout, so
  that several variants of one pair differ; a single text gets word dropout alone. The order carries no meaning for a
  symmetric task (paraphrase, similarity); for an asymmetric one the teacher labels what the new order says.
- ``pair-retrieve`` (issue 38): a pair's second text replaced by the second text of another training input that shares the
  most of its first text's rarer words (:class:`~bort.data.retrieval.TextIndex`; one of the best few, drawn): new pairs on
  the first text's topic — a question with sentences that mention its subject without answering it, a sentence with
  near-paraphrases — that random partners (``pair-mix``) rarely give. Pairs only.
- ``auto``: ``pair-retrieve`` where the inputs are pairs, ``dropout`` where they are single texts (:func:`resolve_transform`);
  neither needs a masked-LM.

Every transformation maps a list of inputs (tuples of texts) to as many new inputs, and is a pure
function of its seed. :func:`fresh_inputs` makes several variants of each input and keeps the new ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from bort.data.retrieval import TextIndex
from bort.data.tokens import tokenize
from bort.errors import BortError
from bort.models.student import masked_logits

TRANSFORMS = ("mlm-infill", "dropout", "swap", "pair-mix", "segment-swap", "pair-retrieve", "auto")
BEST = 8  # pair-retrieve draws a partner among this many best matches
Texts = tuple[str, ...]
Transform = Callable[[Sequence[Texts], int], list[Texts]]


def _per_word(fn: Callable[[list[str], random.Random], list[str]]) -> Transform:
    def transform(inputs: Sequence[Texts], seed: int) -> list[Texts]:
        rng = random.Random(seed)
        return [tuple(" ".join(fn(text.split(), rng)) for text in texts) for texts in inputs]

    return transform


def _dropout(words: list[str], rng: random.Random, p: float = 0.1) -> list[str]:
    if len(words) < 2:
        return words
    kept = [w for w in words if rng.random() >= p]
    if len(kept) == len(words):  # drop at least one word, so the input changes
        kept.pop(rng.randrange(len(kept)))
    return kept or [rng.choice(words)]


def _swap(words: list[str], rng: random.Random) -> list[str]:
    if len(words) < 2:
        return words
    i = rng.randrange(len(words) - 1)
    return words[:i] + [words[i + 1], words[i]] + words[i + 2 :]


def _pair_mix(inputs: Sequence[Texts], seed: int) -> list[Texts]:
    """Each input with one side (drawn) replaced by that side of another input (drawn); a single text: its first half of
    words, then the other's second half. One input alone stays as it is."""
    rng, n, out = random.Random(seed), len(inputs), []
    for i, texts in enumerate(inputs):
        if n < 2:
            out.append(texts)
            continue
        j = rng.randrange(n - 1)
        other = inputs[j + (j >= i)]
        if len(texts) > 1:
            side = rng.randrange(len(texts))
            out.append(tuple(other[k] if k == side else t for k, t in enumerate(texts)))
        else:
            mine, theirs = texts[0].split(), other[0].split()
            out.append((" ".join(mine[: max(1, len(mine) // 2)] + theirs[len(theirs) // 2 :]),))
    return out


def _segment_swap(inputs: Sequence[Texts], seed: int) -> list[Texts]:
    """Each pair in the other order with probability ½ (drawn), then word dropout on each side; a single text, dropout alone."""
    rng, out = random.Random(seed), []
    for texts in inputs:
        if len(texts) > 1 and rng.random() < 0.5:
            texts = texts[::-1]
        out.append(tuple(" ".join(_dropout(t.split(), rng)) for t in texts))
    return out


class PairRetrieve:
    """``pair-retrieve``: each pair ``(a, b)`` becomes ``(a, c)``, ``c`` drawn among the :data:`BEST` second texts of the ``pool``
    (the training inputs) that best match ``a``'s words, none paired with ``a`` in the pool; with none sharing a counted word,
    any other second text."""

    def __init__(self, pool: Sequence[Texts]) -> None:
        odd = next((texts for texts in pool if len(texts) != 2), None)
        if odd is not None:
            raise _not_pairs(len(odd))
        self.own: dict[str, set[str]] = {}
        for a, b in pool:
            self.own.setdefault(a, set()).add(b)
        self.index = TextIndex(list(dict.fromkeys(b for _, b in pool)))

    def __call__(self, inputs: Sequence[Texts], seed: int) -> list[Texts]:
        rng, texts, out = random.Random(seed), self.index.texts, []
        for a, b in inputs:
            mine = self.own.get(a, set()) | {b}
            best = [texts[i] for i in self.index.ranked(a)[: BEST + len(mine)] if texts[i] not in mine][:BEST]
            others = best or [t for t in rng.sample(texts, min(len(texts), BEST + len(mine))) if t not in mine]
            out.append((a, rng.choice(others)) if others else (a, b))
        return out


def _not_pairs(width: int) -> BortError:
    return BortError(f"--transform pair-retrieve makes new sentence pairs, and this task's inputs have {width} text(s); "
                     "use --transform dropout or pair-mix")


def _no_mlm_head(model: str | Path) -> BortError:
    return BortError(f"'{model}' has no masked-LM head for --transform mlm-infill; give --infill-model a masked-LM folder "
                     "(e.g. from `bort teacher prepare`), or use --transform dropout or swap")


def resolve_transform(name: str, width: int) -> str:
    """The transformation ``name`` stands for on inputs of ``width`` texts: ``auto`` is ``pair-retrieve`` for pairs (issue 38:
    on qnli-from-dev it kept 92% of the teacher's skill above chance where word dropout kept 62%, BENCHMARKS §1) and
    ``dropout`` for single texts; any other name is itself."""
    if name != "auto":
        return name
    return "pair-retrieve" if width == 2 else "dropout"


def check_transform(name: str, infill_model: str | Path, width: int) -> None:
    """Refuse, before any work, a transformation that could not run on inputs of ``width`` texts: ``mlm-infill`` with a model
    that has no masked-LM head, ``pair-retrieve`` on single texts."""
    from bort.models.loading import has_mlm_head, resolve_model_path

    name = resolve_transform(name, width)
    if name == "pair-retrieve" and width != 2:
        raise _not_pairs(width)
    if name == "mlm-infill" and not has_mlm_head(resolve_model_path(infill_model)):
        raise _no_mlm_head(infill_model)


class MlmInfill:
    """Re-write masked tokens with a masked-LM (the teacher's MLM head, or any masked-LM folder)."""

    def __init__(self, model: str | Path, *, prob: float = 0.15, device: str = "cpu", batch_size: int = 32) -> None:
        from bort.models.teacher import load_teacher

        teacher = load_teacher(model, device=device)
        if not teacher.has_mlm_head:
            raise _no_mlm_head(model)
        self.model, self.tokenizer, self.prob, self.batch_size = teacher.model, teacher.tokenizer, prob, batch_size
        self.max_len = min(teacher.max_seq_len, 256)

    @torch.inference_mode()
    def _fill(self, texts: list[str], gen: torch.Generator) -> list[str]:
        tok = self.tokenizer
        enc = tokenize(tok, texts, max_len=self.max_len, padding=True, return_tensors="pt", return_special_tokens_mask=True)
        ids, special = enc["input_ids"], enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
        chosen = (torch.rand(ids.shape, generator=gen) < self.prob) & ~special
        for row in range(len(texts)):  # at least one masked token per text that has any
            free = (~special[row]).nonzero().squeeze(1)
            if not chosen[row].any() and len(free):
                chosen[row, free[torch.randint(len(free), (1,), generator=gen)]] = True
        masked = ids.masked_fill(chosen, tok.mask_token_id)
        device = next(self.model.parameters()).device
        logits = masked_logits(self.model, masked.to(device), chosen.to(device), enc["attention_mask"].to(device)).float().cpu()
        logits[:, tok.all_special_ids] = -torch.inf
        logits.scatter_(-1, ids[chosen].unsqueeze(-1), -torch.inf)  # never the original token
        filled = ids.masked_scatter(chosen, logits.argmax(-1))
        return [tok.decode(row[~special[i]], skip_special_tokens=True, clean_up_tokenization_spaces=True).strip()
                for i, row in enumerate(filled)]

    def __call__(self, inputs: Sequence[Texts], seed: int) -> list[Texts]:
        gen = torch.Generator().manual_seed(seed)
        width = len(inputs[0]) if inputs else 0
        flat = [text for texts in inputs for text in texts]
        out = [t for b in range(0, len(flat), self.batch_size) for t in self._fill(flat[b : b + self.batch_size], gen)]
        return [tuple(out[i : i + width]) for i in range(0, len(out), width)]


def fresh_inputs(transform: Transform, inputs: Sequence[Texts], variants: int, seen: set[Texts], seed: Callable[[int], int]) -> list[tuple[int, Texts]]:
    """``variants`` transformations of every input (variant ``v`` with seed ``seed(v)``), keeping each new input that
    is in ``seen`` neither (it joins it) nor has an empty text: ``(index of its source input, its texts)``, in order."""
    fresh = []
    for v in range(variants):
        for i, texts in enumerate(transform(inputs, seed(v))):
            if texts not in seen and all(t.strip() for t in texts):
                seen.add(texts)
                fresh.append((i, texts))
    return fresh


def make_transform(name: str, infill_model: str | Path | None = None, *, device: str = "cpu", pool: Sequence[Texts] = ()) -> Transform:
    """The transformation called ``name``; ``mlm-infill`` needs a masked-LM folder, ``pair-retrieve`` the training inputs
    (``pool``) it draws partners from, ``auto`` the pool's width (:func:`resolve_transform`)."""
    name = resolve_transform(name, len(pool[0]) if pool else 1)
    if name == "dropout":
        return _per_word(_dropout)
    if name == "swap":
        return _per_word(_swap)
    if name == "pair-mix":
        return _pair_mix
    if name == "segment-swap":
        return _segment_swap
    if name == "pair-retrieve":
        return PairRetrieve(pool)
    if name == "mlm-infill":
        if infill_model is None:
            raise BortError("--transform mlm-infill needs a masked-LM: pass --infill-model (e.g. the teacher prepared with `bort teacher prepare`)")
        return MlmInfill(infill_model, device=device)
    raise BortError(f"unknown transformation '{name}': choose one of {', '.join(TRANSFORMS)}")
