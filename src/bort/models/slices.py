"""``--init teacher``: start the student from slices of the teacher, with an explicit weight map.

Model surgery in the nanoGPT spirit: every student tensor is named, mapped to one teacher tensor
and a slice of it, and the shapes are checked; nothing is loaded with ``strict=False``.
Student layer i takes teacher layer ⌊(i+1)·D_T/D_S⌋ − 1, so the layers are spread evenly over
the teacher's depth and the last student layer is the teacher's last. Matrices keep their
leading rows and columns (the first heads, the first hidden and intermediate units).

``--init importance`` keeps, in each layer, the teacher's most important FFN units instead of the first ones (the
rest as ``teacher``): unit j of a layer scores E|a_j|·‖W_out[:, j]‖, the mean size of what it adds to the layer's
output over real tokens of the corpus (the activation importance of Minitron, Muralidharan et al. 2024, which prunes
width this way before distilling; docs/design.md, "Teacher slices"). Only the FFN: a head is a unit only where the
student keeps the teacher's head width, and the hidden width runs through every LayerNorm of the residual stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from transformers import PreTrainedModel

from bort.errors import BortError
from bort.models.families import family

_LAYER = re.compile(r"\.layer\.(\d+)\.")
INITS = ("random", "teacher", "importance")  # a student's start: seeded random weights, the teacher's leading slices, or its important units
SAMPLE_BATCHES = 8  # training batches whose tokens score the FFN units (--init importance): a few thousand tokens
Index = slice | torch.Tensor  # of one dimension of a teacher tensor: a leading slice, or the units kept, in the teacher's order


def _ffn_width(config) -> int:
    """The teacher's intermediate size; its units are told apart by size, so it must differ from the hidden size."""
    arch = family(config).arch(config)
    if arch.I == arch.H:
        raise BortError(f"--init importance tells the FFN's units by their size, and this teacher's intermediate size equals its hidden size "
                        f"({arch.I}); use --init teacher")
    return arch.I


def _down_projection(layer: torch.nn.Module, width: int) -> torch.nn.Linear:
    """A layer's FFN down-projection: its one linear map that reads ``width`` (the intermediate size) inputs."""
    found = [m for m in layer.modules() if isinstance(m, torch.nn.Linear) and m.in_features == width]
    if len(found) != 1:
        raise BortError(f"--init importance: a layer has {len(found)} linear maps from the intermediate size {width}, not one; use --init teacher")
    return found[0]


@torch.no_grad()
def ffn_importance(teacher: PreTrainedModel, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Per teacher layer, the score of each FFN unit, E|a_j|·‖W_out[:, j]‖ over the real tokens of ``batches`` of
    ``(input_ids, attention_mask)`` (the activations the down-projection reads, in eval mode)."""
    fam, width = family(teacher.config), _ffn_width(teacher.config)
    downs = [_down_projection(fam.layer(teacher, i), width) for i in range(teacher.config.num_hidden_layers)]
    sums = [torch.zeros(width, dtype=torch.float64) for _ in downs]
    state = {"mask": None, "tokens": 0}

    def hook(i: int):
        def add(_module, inputs) -> None:
            a = inputs[0].abs().float() * state["mask"][..., None]
            sums[i] += a.reshape(-1, width).sum(0).double().cpu()
        return add

    handles = [d.register_forward_pre_hook(hook(i)) for i, d in enumerate(downs)]
    was_training = teacher.training
    teacher.eval()
    try:
        device = next(teacher.parameters()).device
        for ids, mask in batches:
            mask = mask.to(device)
            state["mask"], state["tokens"] = mask.float(), state["tokens"] + int(mask.sum())
            teacher.base_model(**fam.inputs({"input_ids": ids.to(device), "attention_mask": mask}))
    finally:
        for h in handles:
            h.remove()
        teacher.train(was_training)
    if not state["tokens"]:
        raise BortError("--init importance needs some text to score the teacher's FFN units on; the batches are empty")
    return [(s / state["tokens"]).float() * d.weight.detach().float().norm(dim=0).cpu() for s, d in zip(sums, downs)]


def uses_teacher(init: str) -> bool:
    """Whether a student of this ``--init`` starts from the teacher's weights."""
    return init in ("teacher", "importance")


def teacher_weight_map(student: PreTrainedModel, teacher: PreTrainedModel,
                       units: list[torch.Tensor] | None = None) -> dict[str, tuple[str, tuple[Index, ...]]]:
    """``student name → (teacher name, one index per dimension)`` for every student tensor, shape-checked: leading slices,
    except that with ``units`` (:func:`ffn_importance`, per teacher layer) a layer's intermediate dimension keeps its
    highest-scoring units, in the teacher's order."""
    s_layers, t_layers = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    if s_layers > t_layers:
        raise BortError(f"--init teacher needs a student no deeper than the teacher ({s_layers} > {t_layers} layers); use --init random")
    width = _ffn_width(teacher.config) if units is not None else None
    t_state = teacher.state_dict()
    mapping = {}
    for name, tensor in student.state_dict().items():
        match = _LAYER.search(name)
        source, layer = name, None
        if match:
            layer = (int(match.group(1)) + 1) * t_layers // s_layers - 1
            source = f"{name[: match.start()]}.layer.{layer}.{name[match.end():]}"
        if source not in t_state:
            raise BortError(f"--init teacher: the teacher has no tensor '{source}' for the student's '{name}'; are they of one family?")
        t_shape, s_shape = tuple(t_state[source].shape), tuple(tensor.shape)
        if len(t_shape) != len(s_shape) or any(s > t for s, t in zip(s_shape, t_shape)):
            raise BortError(f"--init teacher: student '{name}' {s_shape} does not fit in teacher '{source}' {t_shape}; use --init random")
        index: list[Index] = [slice(0, n) for n in s_shape]
        if layer is not None and width is not None:
            for dim, (s, t) in enumerate(zip(s_shape, t_shape)):
                if t == width:
                    index[dim] = units[layer].topk(s).indices.sort().values
        mapping[name] = (source, tuple(index))
    return mapping


@torch.no_grad()
def init_from_teacher(student: PreTrainedModel, teacher: PreTrainedModel, units: list[torch.Tensor] | None = None) -> dict[str, str]:
    """Copy the mapped teacher slices (:func:`teacher_weight_map`) into ``student`` in place; returns ``student name → teacher name``."""
    mapping = teacher_weight_map(student, teacher, units)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, (source, index) in mapping.items():
        tensor = t_state[source]
        for dim, idx in enumerate(index):
            tensor = tensor.index_select(dim, idx.to(tensor.device)) if isinstance(idx, torch.Tensor) else tensor.narrow(dim, 0, idx.stop)
        s_state[name].copy_(tensor)
    return {name: source for name, (source, _) in mapping.items()}
