"""Model folders (any model, any head), the teacher, and student construction for the families of models/families.py."""

from bort.models.loading import load_model, load_tokenizer, resolve_model_path
from bort.models.student import build_student, student_config
from bort.models.teacher import Teacher, load_teacher

__all__ = ["Teacher", "build_student", "load_model", "load_teacher", "load_tokenizer", "resolve_model_path", "student_config"]
