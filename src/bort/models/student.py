"""Build a student of architecture ξ in the teacher's family, and run masked-LM heads cheaply."""

from __future__ import annotations

import torch
from transformers import AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel

from bort.arch import Arch
from bort.models.families import family
from bort.models.loading import head_by_kind, strip_remote_code


def student_config(teacher_config: PretrainedConfig, arch: Arch) -> PretrainedConfig:
    """The teacher's config with only ξ changed (algorithms.md §1).

    Family, vocabulary, maximum positions, type vocabulary and activation are kept; remote-code
    fields are not (:func:`~bort.models.loading.strip_remote_code`).
    """
    config = strip_remote_code(family(teacher_config).with_arch(teacher_config, arch))
    config.name_or_path = ""
    return config


def build_student(teacher_config: PretrainedConfig, arch: Arch, *, seed: int | None = None) -> PreTrainedModel:
    """A randomly initialised masked-LM student of shape ξ; ``seed`` makes the init reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(student_config(teacher_config, arch))


def random_encoder(teacher_config: PretrainedConfig, arch: Arch, *, seed: int = 0, head: str = "encoder") -> PreTrainedModel:
    """A seeded random-weight model of shape ξ, in eval mode and frozen: what î and the benchmark time.

    ``head`` is the kind of top (:data:`~bort.models.loading.HEADS`): ``encoder`` is the bare encoder without pooler; a task
    head (``classification``, ``multiple_choice``) keeps its pooler and classifier, as a fine-tuned student ships.
    """
    torch.manual_seed(seed)
    kwargs = family(teacher_config).bare_kwargs() if head == "encoder" else {}
    return head_by_kind(head).auto.from_config(student_config(teacher_config, arch), **kwargs).eval().requires_grad_(False)


def mlm_head(model: PreTrainedModel) -> torch.nn.Module:
    """The masked-LM head of a masked-LM model (its family's modules: BERT's ``cls``, RoBERTa's ``lm_head``, …)."""
    return family(model.config).mlm_head_module(model)


def masked_logits(model: PreTrainedModel, input_ids: torch.Tensor, positions: torch.Tensor,
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Vocabulary logits at the ``positions`` (a boolean mask) only, shape ``[n_masked, V]``.

    Running the head on the ~15% masked positions instead of every token saves most of the
    cost of the vocabulary projection. Packed corpus blocks have no padding, so they need no
    ``attention_mask``; padded batches of texts do.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return mlm_head(model)(hidden[positions])
