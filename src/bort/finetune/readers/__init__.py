"""Readers of the tasks' official distributions, one module per format family.

:mod:`~bort.finetune.readers.glue` (tab-separated values), :mod:`~bort.finetune.readers.superglue`
(JSON lines) and :mod:`~bort.finetune.readers.race` (folders of one-JSON-object files) each offer
``read(task, folder, split)``; :mod:`~bort.finetune.readers.common` holds what they share.
Use them through :func:`bort.finetune.tasks.read_split`. :mod:`~bort.finetune.readers.hub` reads the
same tasks through Hugging Face ``datasets``, :mod:`~bort.finetune.readers.own` one's own CSV, TSV and
JSON-lines files; :mod:`bort.finetune.source` chooses among them.
"""
