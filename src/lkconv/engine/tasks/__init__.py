"""Tasks: classify, forecast, segment and detect, each one registered :class:`Task` (see :mod:`.base` for how to add
one)."""

from . import classify, detect, forecast, segment  # noqa: F401 - register the built-in tasks
from .base import Task, get_task, register_task, task_names

__all__ = ["Task", "get_task", "register_task", "task_names"]
