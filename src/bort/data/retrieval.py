"""Texts ranked by the rarer words they share with a query: an inverted index weighted by inverse document frequency.

``--transform pair-retrieve`` (:mod:`bort.finetune.transforms`) pairs a text with others on its topic this way, as a search
engine's first stage would. Written here rather than taken from scikit-learn: ``TfidfVectorizer`` ranks the same (the tests
check it against it), but these few lines do not need scikit-learn and SciPy at run time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")
COMMON = 0.02  # a word in more than this share of the texts (and in more than 2) does not count: a stop word


def words(text: str) -> frozenset[str]:
    """The distinct words of ``text``: runs of letters and digits, lower-cased."""
    return frozenset(_WORD.findall(text.lower()))


class TextIndex:
    """The ``texts``, each scored against a query by the summed inverse document frequency, ln(n / df), of the words they
    share; words in more than :data:`COMMON` of the texts (and more than 2) are left out."""

    def __init__(self, texts: Sequence[str], *, common: float = COMMON) -> None:
        self.texts = list(texts)
        postings: dict[str, list[int]] = {}
        for i, text in enumerate(self.texts):
            for word in words(text):
                postings.setdefault(word, []).append(i)
        n, most = len(self.texts), max(common * len(self.texts), 2)
        self.idf = {w: math.log(n / len(ids)) for w, ids in postings.items() if len(ids) <= most}
        self.postings = {w: postings[w] for w in self.idf}

    def ranked(self, query: str) -> list[int]:
        """The indices of the texts that share a counted word with ``query``, best first (of equals, the earlier text first)."""
        scores: dict[int, float] = {}
        for word in words(query) & self.idf.keys():
            for i in self.postings[word]:
                scores[i] = scores.get(i, 0.0) + self.idf[word]
        return sorted(scores, key=lambda i: (-scores[i], i))
