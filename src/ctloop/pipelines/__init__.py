"""Pipeline definitions (wiring only) and their compile entry point."""

TASK_ENV = {"PYTHONOPTIMIZE": "1"}
"""Environment of every task process, here (``local``) and on a cluster (``training``). Feast
decorates its classes with typeguard's ``@typechecked``, which re-instruments them on every
import (~5 s); under ``-O`` it is a no-op (feast imports in ~2.4 s). The platform image sets it too.
"""
