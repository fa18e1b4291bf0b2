"""bort.data.retrieval: texts ranked by the rarer words they share with a query, against scikit-learn's TF-IDF."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bort.data.retrieval import TextIndex, words

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")


def test_ranking_equals_scikit_learns_idf_weighted_overlap():
    """The index's order is that of a query's binary word counts times the texts' binary TF-IDF vectors (ln(n/df), words in
    more than the common share dropped), computed by scikit-learn; of equal scores, the earlier text first."""
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(60)] + ["the"] * 20  # "the" in most texts: a stop word
    texts = [" ".join(rng.choices(vocab, k=rng.randint(3, 12))) for _ in range(200)]
    queries = [" ".join(rng.choices(vocab, k=6)) for _ in range(30)]
    index = TextIndex(texts, common=0.1)
    tfidf = sklearn_text.TfidfVectorizer(token_pattern=r"[a-z0-9]+", binary=True, norm=None, smooth_idf=False, max_df=0.1)
    pool = tfidf.fit_transform(texts)
    pool.data -= 1.0  # scikit-learn's idf is ln(n/df) + 1
    counts = sklearn_text.CountVectorizer(token_pattern=r"[a-z0-9]+", binary=True, vocabulary=tfidf.vocabulary_)
    scores = (counts.transform(queries) @ pool.T).toarray()
    assert "the" not in tfidf.vocabulary_ and "the" not in index.idf
    for q, row in zip(queries, scores):
        expected = [i for i in np.lexsort((np.arange(len(texts)), -row.round(9))) if row[i] > 0]
        assert index.ranked(q) == expected


def test_words_and_a_small_index():
    assert words("The cat's 2 CATS!") == {"the", "cat", "s", "2", "cats"}
    index = TextIndex(["a red fox", "a blue fox", "a red car"])  # three texts: words in up to 2 of them count
    assert "a" not in index.idf and index.ranked("red fox") == [0, 1, 2] and index.ranked("green") == []
