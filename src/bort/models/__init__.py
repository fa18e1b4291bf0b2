"""Teacher loading, student construction and masked-LM helpers for the BERT/RoBERTa family."""

from bort.models.student import build_student, student_config
from bort.models.teacher import Teacher, load_teacher, resolve_model_path

__all__ = ["Teacher", "build_student", "load_teacher", "resolve_model_path", "student_config"]
