"""``bort push``: a model folder bort wrote, its model's files only, to a Hugging Face Hub repository."""

from bort.push.recipe import HubOptions, PushConfig, PushResult, files_to_push, push

__all__ = ["HubOptions", "PushConfig", "PushResult", "files_to_push", "push"]
