"""Shared fixtures: tiny teachers, a small corpus and a tiny space, all built offline in tmp dirs.

Every model here is a 2-layer encoder with hidden size 64 and a few hundred tokens, so that a
whole ``bort extract`` run takes seconds on two CPU cores.
"""

from __future__ import annotations

import os

# One thread: on a two-core machine, two intra-op threads make tiny models slower (contention),
# and subprocesses (the CLI, the resume test) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "corpus"

SEQ_LEN = 32
TEACHER_ARCH = (2, 4, 64, 128)  # ⟨D, A, H, I⟩ of every tiny teacher: the space's maximum point
SPACE_YAML = "D: [1, 2]\nA: [2, 4]\nH: [32, 64]\nI: [64, 128]\n"

_FALLBACK = (
    "The quick brown fox jumps over the lazy dog. A small model learns to predict the missing words "
    "of a sentence from the words around them. Teachers and students read the same text, and the "
    "student tries to match what the teacher believes about every hidden word. "
)


def english_text(max_chars: int) -> str:
    """Up to ``max_chars`` of English: Tiny Shakespeare if the shared data is there, else a paragraph."""
    path = SHARED / "tinyshakespeare.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8")[:max_chars]
    return "\n".join(_FALLBACK for _ in range(max_chars // len(_FALLBACK) + 1))[:max_chars]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _wordpiece(specials: list[str], unk: str, single: str, pair: str, ends: tuple[str, str], vocab_size: int):
    """A WordPiece tokenizer trained on the test English, with BERT's normaliser and the given template (``ends``: its
    opening and closing special tokens)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(_lines(english_text(200_000)), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    # The trainer's token set is stable but its ids vary from process to process: number the tokens in one order, so that the
    # tiny models (and the learning bars of the tests) are the same in every run.
    words = sorted(set(tok.get_vocab()) - set(specials))
    tok.model = models.WordPiece({t: i for i, t in enumerate([*specials, *words])}, unk_token=unk)
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=[(t, tok.token_to_id(t)) for t in ends])
    return tok


def _bert_tokenizer(vocab_size: int = 400):
    from transformers import BertTokenizerFast

    tok = _wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]", "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ("[CLS]", "[SEP]"),
                     vocab_size)
    return BertTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=64
    )


def _roberta_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_lines(english_text(200_000)), trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return RobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", unk_token="<unk>",
        pad_token="<pad>", mask_token="<mask>", model_max_length=64,
    )


def _mpnet_tokenizer(vocab_size: int = 400):
    """MPNet's tokenizer: WordPiece with RoBERTa's special tokens and its pair template (``<s> A </s></s> B </s>``), no token types."""
    from transformers import MPNetTokenizerFast

    tok = _wordpiece(["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "[UNK]", "<s> $A </s>", "<s> $A </s> </s> $B </s>", ("<s>", "</s>"), vocab_size)
    return MPNetTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="[UNK]",
                              pad_token="<pad>", mask_token="<mask>", model_max_length=64)


def _xlmr_tokenizer(vocab_size: int = 400):
    """XLM-RoBERTa's tokenizer: a SentencePiece-style Unigram model (Metaspace) with RoBERTa's special tokens and pair template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(_lines(english_text(200_000)), trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=64)


def bert_config(vocab_size: int):
    from transformers import BertConfig

    D, A, H, I = TEACHER_ARCH  # noqa: E741
    return BertConfig(vocab_size=vocab_size, num_hidden_layers=D, num_attention_heads=A, hidden_size=H, intermediate_size=I, max_position_embeddings=64)


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bert_tokenizer():
    return _bert_tokenizer()


@pytest.fixture(scope="session")
def bert_teacher(tmp_path_factory, bert_tokenizer) -> Path:
    """A tiny BERT masked-LM teacher folder ⟨2,4,64,128⟩ with its WordPiece tokenizer."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    return _save(BertForMaskedLM(bert_config(len(bert_tokenizer))), bert_tokenizer, tmp_path_factory.mktemp("bert_teacher"))


@pytest.fixture(scope="session")
def bert_teacher_nohead(tmp_path_factory, bert_tokenizer) -> Path:
    """The same tiny BERT encoder saved without a masked-LM head (a sentence-embedding model)."""
    from transformers import BertModel

    torch.manual_seed(0)
    return _save(BertModel(bert_config(len(bert_tokenizer)), add_pooling_layer=True), bert_tokenizer, tmp_path_factory.mktemp("bert_nohead"))


@pytest.fixture(scope="session")
def roberta_teacher(tmp_path_factory) -> Path:
    """A tiny RoBERTa masked-LM teacher with a byte-level BPE tokenizer."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    tokenizer = _roberta_tokenizer()
    D, A, H, I = TEACHER_ARCH  # noqa: E741
    config = RobertaConfig(
        vocab_size=len(tokenizer), num_hidden_layers=D, num_attention_heads=A, hidden_size=H, intermediate_size=I,
        max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    torch.manual_seed(0)
    return _save(RobertaForMaskedLM(config), tokenizer, tmp_path_factory.mktemp("roberta_teacher"))


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """About 20 kB of English text: the head of WikiText-103's validation split, if present."""
    wiki = SHARED / "wikitext-103" / "wiki.valid.tokens"
    text = wiki.read_text(encoding="utf-8")[:20_000] if wiki.is_file() else english_text(20_000)
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def space_file(tmp_path_factory) -> Path:
    """D ∈ {1,2}, A ∈ {2,4}, H ∈ {32,64}, I ∈ {64,128}: 16 tuples, 15 candidates once T is excluded."""
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(SPACE_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def extract_args(corpus_file, space_file):
    """``make(teacher, out, *extra)``: the argument list of a fast ``bort extract`` run.

    ``extra`` comes last, so it overrides any default here (argparse keeps the last value).
    """

    def make(teacher, out, *extra: str) -> list[str]:
        return [
            "extract", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus_file), "--space", str(space_file),
            "--seq-len", str(SEQ_LEN), "--latency-seq", str(SEQ_LEN), "--steps", "3", "--eval-sequences", "8", "--batch-size", "4",
            "--latency-runs", "2", "--head-steps", "5", "--no-progress", *extra,
        ]

    return make


@pytest.fixture(scope="session")
def bort_cmd():
    """The ``bort`` command as a subprocess argument list prefix."""
    return [sys.executable, "-m", "bort"]


@contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """A child process the test starts: however the test leaves, it is killed if still alive, waited for, and its pipes closed."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="session")
def mpnet_teacher(tmp_path_factory) -> Path:
    """A tiny MPNet masked-LM teacher (its relative-attention bias, no token types) with its tokenizer."""
    from transformers import MPNetConfig, MPNetForMaskedLM

    tokenizer = _mpnet_tokenizer()
    D, A, H, I = TEACHER_ARCH  # noqa: E741
    config = MPNetConfig(vocab_size=len(tokenizer), num_hidden_layers=D, num_attention_heads=A, hidden_size=H, intermediate_size=I,
                         max_position_embeddings=66, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return _save(MPNetForMaskedLM(config), tokenizer, tmp_path_factory.mktemp("mpnet_teacher"))


@pytest.fixture(scope="session")
def xlmr_teacher(tmp_path_factory) -> Path:
    """A tiny XLM-RoBERTa masked-LM teacher (RoBERTa's layout) with a SentencePiece-style tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    tokenizer = _xlmr_tokenizer()
    D, A, H, I = TEACHER_ARCH  # noqa: E741
    config = XLMRobertaConfig(vocab_size=len(tokenizer), num_hidden_layers=D, num_attention_heads=A, hidden_size=H, intermediate_size=I,
                              max_position_embeddings=66, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return _save(XLMRobertaForMaskedLM(config), tokenizer, tmp_path_factory.mktemp("xlmr_teacher"))


@pytest.fixture(scope="session")
def electra_teacher(tmp_path_factory, bert_tokenizer) -> Path:
    """A tiny ELECTRA masked-LM (generator-style) teacher with embeddings narrower than its hidden states, as ELECTRA-small's."""
    from transformers import ElectraConfig, ElectraForMaskedLM

    D, A, H, I = TEACHER_ARCH  # noqa: E741
    config = ElectraConfig(vocab_size=len(bert_tokenizer), num_hidden_layers=D, num_attention_heads=A, hidden_size=H, intermediate_size=I,
                           embedding_size=H // 2, max_position_embeddings=64)
    torch.manual_seed(0)
    return _save(ElectraForMaskedLM(config), bert_tokenizer, tmp_path_factory.mktemp("electra_teacher"))


@pytest.fixture(scope="session")
def distilbert_teacher(tmp_path_factory, bert_tokenizer) -> Path:
    """A tiny DistilBERT masked-LM teacher (no token types, no pooler, its own config names) with a WordPiece tokenizer."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    D, A, H, I = TEACHER_ARCH  # noqa: E741
    config = DistilBertConfig(vocab_size=len(bert_tokenizer), n_layers=D, n_heads=A, dim=H, hidden_dim=I, max_position_embeddings=64,
                              pad_token_id=bert_tokenizer.pad_token_id)
    torch.manual_seed(0)
    return _save(DistilBertForMaskedLM(config), bert_tokenizer, tmp_path_factory.mktemp("distilbert_teacher"))
