"""``python -m pipeline``: load the plugins, then hand over to the Hydra app.

Sub-commands that are not training runs come first: ``python -m pipeline plugins
[--check]``,
``generate model=... prompt=...``, ``predict model=... text=...`` and
``evaluate model=... data=...``, ``inspect model=... text=...`` and
``runs [experiment] [--sort ...] [--compare RUN1 RUN2]``.
"""

from __future__ import annotations

import os
import sys

#: Sub-commands that load a trained model and compose no Hydra config: their module.
COMPOSE_NOTHING = {
    "generate": "pipeline.inference.generate",
    "predict": "pipeline.inference.predict",
    "inspect": "pipeline.inference.inspect",
}


def run_model_command(name: str, argv: list[str]) -> None:
    """``generate``, ``predict`` or ``inspect``: the plugins load with their config nodes
    kept out of Hydra's ConfigStore (``deferred_config_store``), which these never read."""
    from importlib import import_module

    from pipeline.plugins import load_plugins
    from pipeline.registry import deferred_config_store

    with deferred_config_store():
        load_plugins()
    import_module(COMPOSE_NOTHING[name]).main(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from pipeline.errors import PipelineError, exit_with
    from pipeline.runtime.files import storage_fault

    try:
        if argv[:1] == ["runs"]:  # reads a store: no plugins or configs needed
            from pipeline.reporting.runs import main as runs

            runs(argv[1:])
            return
        if argv[:1] and argv[0] in COMPOSE_NOTHING:
            run_model_command(argv[0], argv[1:])
            return
        from pipeline.config.schemas import register_core_configs
        from pipeline.plugins import load_plugins

        load_plugins()
        register_core_configs()
        if argv[:1] == ["plugins"]:
            from pipeline.config.cli import plugins_command

            sys.exit(plugins_command(argv[1:]))
        if argv[:1] == ["evaluate"]:
            from pipeline.inference.evaluate import main as evaluate

            evaluate(argv[1:])
            return
        from pipeline.config.cli import check_overrides, print_help

        if ("--help" in argv or "-h" in argv) and "-m" not in argv and "--multirun" not in argv:
            print_help(argv)
            return
        check_overrides(argv)
    except PipelineError as exc:
        exit_with(exc)
    except Exception as exc:  # a full disk, a read-only or forbidden folder: say which
        fault = storage_fault(exc)
        if fault is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        exit_with(fault)
    from pipeline.run.app import hydra_app

    sys.argv = [sys.argv[0], *argv]
    hydra_app()


if __name__ == "__main__":
    main()
