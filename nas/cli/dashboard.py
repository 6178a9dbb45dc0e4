"""``python -m nas dashboard``: serve a study in optuna-dashboard."""

from __future__ import annotations

import argparse

from .args import CLIError, Command, host, port
from .common import storage_for

__all__ = ["Dashboard"]


class Dashboard(Command):
    """Serve a study in optuna-dashboard (bound to 127.0.0.1 by default)."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", type=host, default="127.0.0.1", help="address to bind (default: %(default)s)")
        p.add_argument("--port", type=port, default=8080, help="port (default: %(default)s)")

    def take_action(self, args: argparse.Namespace) -> int:
        import socket

        import optuna

        from ..study import StudyError, open_storage

        storage = storage_for(args, create=False)
        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise CLIError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
        try:  # a file that is not a study database fails here, in one line, not inside the server
            storage_obj = open_storage(storage)
            names = optuna.get_all_study_names(storage=storage_obj)
        except StudyError as exc:
            raise CLIError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/Optuna errors of a broken database
            raise CLIError(f"{storage} is not a readable study database ({str(exc).splitlines()[0][:200]})") from None
        if args.study and not args.storage and args.study not in names:
            raise CLIError(f"no study {args.study!r} in {storage}; stored: {', '.join(names) or 'none'}")
        try:  # the address must be free and bindable before "serving" is printed
            family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((args.host, args.port))
        except OSError as exc:
            raise CLIError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc} (valid: a free port "
                           f"of this machine's address, e.g. --port 8081)") from None
        print(f"serving {storage} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
        from ..dashboard import feasible_best

        try:
            with feasible_best(storage_obj):
                run_server(storage_obj, host=args.host, port=args.port)
        except KeyboardInterrupt:
            pass
        return 0
