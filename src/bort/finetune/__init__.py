"""Fine-tuning and evaluation on GLUE, SuperGLUE and RACE (algorithms.md §5)."""
