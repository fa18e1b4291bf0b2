"""Corpus reading, tokenisation and packing, and BERT-style masking."""

from bort.data.corpus import PackedCorpus, load_corpus, read_texts
from bort.data.masking import MaskedBatch, fixed_masked_batches, mask_tokens, masked_batch_stream

__all__ = ["MaskedBatch", "PackedCorpus", "masked_batch_stream", "fixed_masked_batches", "load_corpus", "mask_tokens", "read_texts"]
