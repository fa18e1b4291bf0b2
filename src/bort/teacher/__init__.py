"""``bort teacher prepare``: a masked-LM head for a teacher without one, trained with the encoder frozen."""

from bort.teacher.prepare import PrepareConfig, prepare

__all__ = ["PrepareConfig", "prepare"]
