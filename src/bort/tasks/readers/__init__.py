"""Readers of the tasks' official distributions, one module per format family.

:mod:`~bort.tasks.readers.glue` (tab-separated values), :mod:`~bort.tasks.readers.superglue`
(JSON lines) and :mod:`~bort.tasks.readers.race` (folders of one-JSON-object files) each offer
``read(task, folder, split)``; :mod:`~bort.tasks.readers.common` holds what they share.
Use them through :func:`bort.tasks.registry.read_split`. :mod:`~bort.tasks.readers.hub` reads the
same tasks through Hugging Face ``datasets``, :mod:`~bort.tasks.readers.own` one's own CSV, TSV and
JSON-lines files; :mod:`bort.tasks.source` chooses among them.
"""
