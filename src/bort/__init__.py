"""bort: extract, pretrain and ship small models of the BERT family (BERT, RoBERTa, XLM-R, ELECTRA, MPNet, DistilBERT): the Bort method.

The pipeline, a verb of the ``bort`` command each, with one public entry (its config dataclass is also its CLI):

- ``bort extract``: the FPTAS over the space Ξ with p̂, î and ê (:func:`bort.extract.extract`);
- ``bort teacher prepare``: a masked-LM head for a teacher without one (:func:`bort.teacher.prepare.prepare_teacher`);
- ``bort pretrain``: distillation pretraining of the extracted shape (:func:`bort.pretrain.pretrain`);
- ``bort finetune``: fine-tuning and task distillation on GLUE, SuperGLUE, RACE or one's own data
  (:func:`bort.finetune.finetune`), or Agora (:func:`bort.agora.recipe.agora`);
- ``bort evaluate``: scores and leaderboard files (:func:`bort.evaluate.recipe`);
- ``bort export``, ``bort predict``, ``bort bench``: ONNX fp32/int8, predictions, CPU timings
  (:func:`bort.export.export_onnx`, :func:`bort.predict.recipe.predict`, :func:`bort.bench.recipe.bench`);
- ``bort compress``: every stage chained, with the report (:func:`bort.compress.compress`).
"""

__version__ = "0.1.0"

from bort.arch import Arch  # noqa: E402
from bort.errors import BortError  # noqa: E402

__all__ = ["Arch", "BortError", "__version__"]
