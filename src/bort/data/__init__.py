"""Corpus reading, tokenisation and packing, and BERT-style masking."""

from bort.data.corpus import PackedCorpus, load_corpus, read_texts
from bort.data.masking import MaskedBatch, batch_stream, fixed_masked_batches, mask_tokens

__all__ = ["MaskedBatch", "PackedCorpus", "batch_stream", "fixed_masked_batches", "load_corpus", "mask_tokens", "read_texts"]
