"""Representation distillation: what a student learns from a teacher besides its masked-token logits.

Three terms, each weighted by the user (any mix, with or without the logit terms of
:class:`~bort.training.losses.LogitLoss`):

- **hidden** (TinyBERT, DistilBERT): the mean squared error between student and teacher hidden
  states. Student layer i is paired with teacher layer ⌊(i+1)·D_T/D_S⌋−1, the rule of
  ``--init teacher``: the last layer only by default, every layer with ``layer_map="uniform"``.
  Where H_S ≠ H_T a learned linear projection maps the student's states to the teacher's width.
- **attention relations** (MiniLMv2): the KL divergence between the teacher's and the student's
  query–query, key–key and value–value relation distributions softmax(x·xᵀ/√d) of one layer (the
  student's last, the teacher's last or ``attn_layer``), or, with ``attn_layers`` N, of the student's
  last N layers, each paired with a teacher layer by the rule above, the mean over the pairs (issue 38's
  lever: relations of more than the last layer). The H features are split into R relation heads, so
  students of any head count and width are compared with any teacher.
- **embedding** (sentence-transformers distillation): 1 − cos between the pooled sentence
  embeddings, pooled as the teacher's sentence-transformers pipeline pools (:mod:`bort.models.sentence`).

The projections live in :class:`Distiller` beside the student, train with it and are checkpointed
with it, and are never saved into the student's folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bort.data.masking import MaskedBatch
from bort.errors import BortError
from bort.models.families import family
from bort.models.sentence import Pooling, pool
from bort.models.student import mlm_head
from bort.options import opt


@dataclass(frozen=True)
class RepresentationLoss:
    """The weights of the representation terms and how layers are paired."""

    alpha_hidden: float = field(default=0.0, metadata=opt("weight of the hidden-state MSE to the teacher"))
    alpha_attn: float = field(default=0.0, metadata=opt("weight of the self-attention relation KL to the teacher (MiniLMv2)"))
    alpha_embed: float = field(default=0.0, metadata=opt("weight of 1 − cos between the pooled sentence embeddings"))
    layer_map: str = field(default="last", metadata=opt("hidden states of the last layer only, or of every student layer",
                                                        choices=("last", "uniform")))
    attn_layer: int | None = field(default=None, metadata=opt("teacher layer (1-based) of the relations (default: its last)"))
    attn_layers: int = field(default=1, metadata=opt("relations of the student's last N layers, each paired with a teacher layer as "
                                                     "--layer-map pairs them, averaged (1: the last layer's, MiniLMv2)"))
    relation_heads: int | None = field(default=None, metadata=opt("relation heads R, dividing both hidden sizes "
                                                                  "(default: the largest divisor up to the teacher's heads)"))

    def __post_init__(self) -> None:
        if min(self.alpha_hidden, self.alpha_attn, self.alpha_embed) < 0:
            raise BortError("--alpha-hidden, --alpha-attn and --alpha-embed must be 0 or more")
        if self.layer_map not in ("last", "uniform"):
            raise BortError(f"--layer-map must be last or uniform, got '{self.layer_map}'")
        if (self.attn_layer is not None and self.attn_layer < 1) or (self.relation_heads is not None and self.relation_heads < 1) \
                or self.attn_layers < 1:
            raise BortError("--attn-layer, --attn-layers and --relation-heads must be at least 1")
        if self.attn_layer is not None and self.attn_layers > 1:
            raise BortError(f"--attn-layer names one teacher layer; with --attn-layers {self.attn_layers} the layers are paired by "
                            "their depth: give one of the two")

    @property
    def weights(self) -> dict[str, float]:
        """The weights by their flags (:func:`~bort.training.losses.check_some_weight`)."""
        return {"--alpha-hidden": self.alpha_hidden, "--alpha-attn": self.alpha_attn, "--alpha-embed": self.alpha_embed}

    @property
    def active(self) -> bool:
        return self.alpha_hidden + self.alpha_attn + self.alpha_embed > 0


def layer_pairs(d_s: int, d_t: int, mode: str, last: int = 1) -> list[tuple[int, int]]:
    """``(student layer, teacher layer)`` pairs, 0-based: student layer i takes teacher layer ⌊(i+1)·D_T/D_S⌋−1; every
    student layer (``uniform``) or its ``last`` ones."""
    layers = range(d_s) if mode == "uniform" else range(max(0, d_s - last), d_s)
    return [(i, (i + 1) * d_t // d_s - 1) for i in layers]


def relation_heads(h_s: int, h_t: int, a_t: int, asked: int | None = None) -> int:
    """R: ``asked`` if it divides both widths, else the largest divisor of gcd(H_S, H_T) that is at most A_T."""
    if asked is not None:
        if h_s % asked or h_t % asked:
            raise BortError(f"--relation-heads {asked} must divide both hidden sizes ({h_s} and {h_t})")
        return asked
    g = math.gcd(h_s, h_t)
    return max(d for d in range(1, min(g, a_t) + 1) if g % d == 0)


def relation_logprobs(x: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """log softmax(x·xᵀ/√d) per relation head: ``[B, L, H]`` → ``[B, R, L, L]``, padded keys left out."""
    b, length, h = x.shape
    x = x.float().view(b, length, heads, h // heads).transpose(1, 2)
    scores = x @ x.transpose(-1, -2) / math.sqrt(h // heads)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_kl(teacher: torch.Tensor, student: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher relations ‖ student relations), averaged over the heads and the real (unpadded) rows."""
    t, s = relation_logprobs(teacher, heads, mask), relation_logprobs(student, heads, mask)
    kl = (t.exp() * (t - s)).sum(-1)  # [B, R, L]
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / rows.sum()


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real tokens and the features."""
    rows = mask.unsqueeze(-1).to(torch.float32)
    return (((student.float() - teacher.float()) ** 2) * rows).sum() / (rows.sum() * student.shape[-1])


def embed_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean 1 − cos between sentence embeddings."""
    return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


@dataclass
class Views:
    """What the representation terms read from one forward: hidden states of the paired layers, Q/K/V of each
    relation layer, the pooled embedding (each present only when a term needs it)."""

    hidden: list[torch.Tensor]
    qkv: list[tuple[torch.Tensor, ...]] | None
    embedding: torch.Tensor | None
    last: torch.Tensor | None  # the last hidden state, for the masked-LM head (a bare encoder's only)
    logits: torch.Tensor | None = None  # the masked-LM logits at the masked positions, where asked for
    output: object = None  # a whole task model's output (logits, loss), where one ran

    def map(self, fn) -> Views:
        """Every tensor of these views through ``fn`` (``output`` is not carried over)."""
        def each(t):
            return None if t is None else fn(t)
        return Views([fn(h) for h in self.hidden], None if self.qkv is None else [tuple(map(fn, layer)) for layer in self.qkv],
                     each(self.embedding), each(self.last), each(self.logits))

    def detached(self) -> Views:
        """Copies that autograd may use (a teacher's views come out of ``torch.inference_mode``)."""
        return self.map(torch.Tensor.clone)

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor these views hold."""
        qkv = [t for layer in self.qkv or () for t in layer]
        return [t for t in (*self.hidden, *qkv, self.embedding, self.last, self.logits) if t is not None]


def encoder_views(encoder: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, *, layers: list[int], qkv_layers: list[int],
                  pooling: Pooling | None, **inputs: torch.Tensor) -> Views:
    """Run a bare encoder once and take the views: hidden states of ``layers`` (0-based), the
    query/key/value projections of each of ``qkv_layers`` (read by forward hooks), and the pooled embedding.

    ``encoder`` may also be a whole task model (fine-tuning): ``inputs`` (``token_type_ids``, ``labels``) go
    to it too, and its output (logits, loss) comes from the same forward as the views, in ``output``."""
    captured: dict[tuple[int, str], torch.Tensor] = {}
    hooks = []
    for layer in qkv_layers:
        for name, module in zip(("query", "key", "value"), family(encoder.config).qkv_modules(encoder, layer)):
            hooks.append(module.register_forward_hook(lambda _m, _i, out, key=(layer, name): captured.__setitem__(key, out)))
    try:
        out = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=bool(layers), **inputs)
    finally:
        for h in hooks:
            h.remove()
    hidden = [out.hidden_states[i + 1] for i in layers] if layers else []
    qkv = [tuple(captured[layer, n] for n in ("query", "key", "value")) for layer in qkv_layers] if qkv_layers else None
    embedding = pool(out.last_hidden_state, mask, pooling) if pooling is not None else None
    return Views(hidden, qkv, embedding, getattr(out, "last_hidden_state", None), output=out)


class Distiller(torch.nn.Module):
    """The student with the projections its representation terms need; the module that trains and is checkpointed.

    ``forward`` returns the student's :class:`Views` with hidden states and embedding already projected
    to the teacher's width; :meth:`terms` compares them with the teacher's.
    """

    def __init__(self, student: torch.nn.Module, teacher_config, loss: RepresentationLoss, pooling: Pooling | None) -> None:
        super().__init__()
        self.student, self.loss, self.pooling = student, loss, pooling
        s_cfg = student.config
        h_s, h_t = s_cfg.hidden_size, teacher_config.hidden_size
        self.pairs = layer_pairs(s_cfg.num_hidden_layers, teacher_config.num_hidden_layers, loss.layer_map) if loss.alpha_hidden else []
        d_s, d_t = s_cfg.num_hidden_layers, teacher_config.num_hidden_layers
        if loss.alpha_attn and loss.attn_layers > d_s:
            raise BortError(f"--attn-layers {loss.attn_layers} is more than the student's {d_s} layers")
        # (student layer, teacher layer) of the relations: the last pairs of the depth rule, or the student's last and --attn-layer
        self.qkv_pairs = ([] if not loss.alpha_attn else [(d_s - 1, loss.attn_layer - 1)] if loss.attn_layer else
                          layer_pairs(d_s, d_t, "last", loss.attn_layers))
        if any(t >= d_t for _, t in self.qkv_pairs):
            raise BortError(f"--attn-layer {loss.attn_layer} is past the teacher's {d_t} layers")
        self.heads = relation_heads(h_s, h_t, teacher_config.num_attention_heads, loss.relation_heads) if loss.alpha_attn else 0

        def projection() -> torch.nn.Module:
            return torch.nn.Identity() if h_s == h_t else torch.nn.Linear(h_s, h_t)

        self.hidden_proj = torch.nn.ModuleList(projection() for _ in self.pairs)
        self.embed_proj = projection() if loss.alpha_embed else torch.nn.Identity()

    @property
    def encoder(self) -> torch.nn.Module:
        return self.student.base_model

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None = None, **inputs: torch.Tensor) -> Views:
        """The student's views; with ``positions`` (a boolean mask) also its masked-LM logits there. With task
        ``inputs`` with ``labels`` the whole task model runs, its output in ``views.output``; ``token_type_ids`` alone (sentence
        pairs in pretraining) go to the encoder."""
        views = encoder_views(self.student if "labels" in inputs else self.encoder, input_ids, mask, layers=[s for s, _ in self.pairs],
                              qkv_layers=[s for s, _ in self.qkv_pairs],
                              pooling=self.pooling if self.loss.alpha_embed else None, **inputs)
        views.hidden = [p(h) for p, h in zip(self.hidden_proj, views.hidden)]
        if views.embedding is not None:
            views.embedding = self.embed_proj(views.embedding)
        if positions is not None:
            views.logits = mlm_head(self.student)(views.last[positions])
        return views

    def teacher_views(self, teacher_encoder: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, **inputs: torch.Tensor) -> Views:
        """The teacher's views of the same batch (run it under ``torch.inference_mode``); ``inputs``: e.g. ``token_type_ids``."""
        return encoder_views(teacher_encoder, input_ids, mask, layers=[t for _, t in self.pairs], qkv_layers=[t for _, t in self.qkv_pairs],
                             pooling=self.pooling if self.loss.alpha_embed else None, **inputs)

    def terms(self, student: Views, teacher: Views, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each active term's value (unweighted): ``hidden_mse``, ``attn_kl``, ``embed_distance``."""
        out = {}
        if self.pairs:
            out["hidden_mse"] = sum(hidden_mse(s, t, mask) for s, t in zip(student.hidden, teacher.hidden)) / len(self.pairs)
        if student.qkv is not None:  # per layer pair: Σ over Q, K and V (MiniLMv2); then the mean over the pairs
            out["attn_kl"] = sum(relation_kl(t, s, self.heads, mask) for mine, theirs in zip(student.qkv, teacher.qkv)
                                 for s, t in zip(mine, theirs)) / len(student.qkv)
        if student.embedding is not None:
            out["embed_distance"] = embed_distance(student.embedding, teacher.embedding)
        return out

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ α · term over the active terms."""
        weights = {"hidden_mse": self.loss.alpha_hidden, "attn_kl": self.loss.alpha_attn, "embed_distance": self.loss.alpha_embed}
        return sum(weights[k] * v for k, v in terms.items())


def block_inputs(batch: MaskedBatch, masked: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A packed corpus batch's input ids (masked, where a logit term reads the masked positions; else the original
    text) and its attention mask (packed blocks have no padding)."""
    ids = batch.input_ids if masked else torch.where(batch.positions, batch.labels, batch.input_ids)
    return ids, torch.ones_like(ids)


def short_views(ids: torch.Tensor, min_len: int, *, sep_id: int, pad_id: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed ``[CLS] … [SEP]`` blocks cut to sentence-like views: row r keeps its first L_r tokens, L_r drawn log-uniformly
    from [``min_len``, block length], its last kept token made [SEP] and the rest padding (masked out).

    Sentence embeddings are used on short texts (STS-B pairs average about 12 words) while the packed corpus
    only shows 128-token blocks; mean pooling over 128 tokens and over 12 are different things to match.
    The lengths are drawn from ``seed`` and the batch's own tokens, so a resumed run cuts each batch alike.
    Returns the ids and the attention mask.
    """
    n, width = ids.shape
    key = int((ids[:, : min(16, width)].long().cpu() * torch.arange(1, min(16, width) + 1)).sum()) % (2**31)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + key)
    low, high = math.log(min(min_len, width)), math.log(width)
    lengths = torch.exp(torch.empty(n).uniform_(low, high, generator=generator)).round().long().clamp(min(min_len, width), width).to(ids.device)
    mask = (torch.arange(width, device=ids.device)[None] < lengths[:, None]).long()
    cut = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    cut[torch.arange(n, device=ids.device), lengths - 1] = sep_id
    return cut, mask


@torch.inference_mode()
def heldout_terms(distiller: Distiller, teacher_encoder: torch.nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """The mean of each active term over held-out ``(ids, attention mask[, token types])`` batches (blocks through
    :func:`block_inputs`, sentences, or sentence pairs)."""
    device, sums, was_training = next(distiller.parameters()).device, {}, distiller.training
    distiller.eval()
    for ids, mask, *types in inputs:  # sentence pairs: with their token types
        ids, mask = ids.to(device), mask.to(device)
        extra = {"token_type_ids": types[0].to(device)} if types else {}
        for k, v in distiller.terms(distiller(ids, mask, **extra), distiller.teacher_views(teacher_encoder, ids, mask, **extra), mask).items():
            sums[k] = sums.get(k, 0.0) + float(v) / len(inputs)
    distiller.train(was_training)
    return sums
