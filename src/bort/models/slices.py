"""``--init teacher``: start the student from slices of the teacher, with an explicit weight map.

Model surgery in the nanoGPT spirit: every student tensor is named, mapped to one teacher tensor
and a leading slice of it, and the shapes are checked; nothing is loaded with ``strict=False``.
Student layer i takes teacher layer ⌊(i+1)·D_T/D_S⌋ − 1, so the layers are spread evenly over
the teacher's depth and the last student layer is the teacher's last. Matrices keep their
leading rows and columns (the first heads, the first hidden and intermediate units).
"""

from __future__ import annotations

import re

import torch
from transformers import PreTrainedModel

from bort.errors import BortError

_LAYER = re.compile(r"\.layer\.(\d+)\.")


def teacher_weight_map(student: PreTrainedModel, teacher: PreTrainedModel) -> dict[str, tuple[str, tuple[slice, ...]]]:
    """``student name → (teacher name, leading slices)`` for every student tensor, shape-checked."""
    s_layers, t_layers = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    if s_layers > t_layers:
        raise BortError(f"--init teacher needs a student no deeper than the teacher ({s_layers} > {t_layers} layers); use --init random")
    t_state = teacher.state_dict()
    mapping = {}
    for name, tensor in student.state_dict().items():
        match = _LAYER.search(name)
        source = name
        if match:
            layer = (int(match.group(1)) + 1) * t_layers // s_layers - 1
            source = f"{name[: match.start()]}.layer.{layer}.{name[match.end():]}"
        if source not in t_state:
            raise BortError(f"--init teacher: the teacher has no tensor '{source}' for the student's '{name}'; are they of one family?")
        t_shape, s_shape = tuple(t_state[source].shape), tuple(tensor.shape)
        if len(t_shape) != len(s_shape) or any(s > t for s, t in zip(s_shape, t_shape)):
            raise BortError(f"--init teacher: student '{name}' {s_shape} does not fit in teacher '{source}' {t_shape}; use --init random")
        mapping[name] = (source, tuple(slice(0, n) for n in s_shape))
    return mapping


@torch.no_grad()
def init_from_teacher(student: PreTrainedModel, teacher: PreTrainedModel) -> dict[str, str]:
    """Copy the mapped teacher slices into ``student`` in place; returns ``student name → teacher name``."""
    mapping = teacher_weight_map(student, teacher)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, (source, slices) in mapping.items():
        s_state[name].copy_(t_state[source][slices])
    return {name: source for name, (source, _) in mapping.items()}
