"""Account commands: ``create-admin EMAIL`` (the first administrator of a real clinic).

A clinic that does not start from the demo needs one account to sign in with; the admin then adds
the staff on the Users page. The password comes from ``CANDOR_ADMIN_PASSWORD`` when set (scripts),
else it is asked for twice on the terminal; it is never taken from the command line, where it would
stay in the shell history and the process list.
"""

from __future__ import annotations

import argparse
import sys

from analysis import config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "create-admin",
        help="create an administrator account (a real clinic's "
        "first sign-in; password from CANDOR_ADMIN_PASSWORD "
        "or asked for)",
    )
    p.add_argument("email")
    p.add_argument("--name", default="", help="display name (default: the email)")
    p.set_defaults(func=_create_admin)


def _password() -> str | None:
    if config.setting("CANDOR_ADMIN_PASSWORD"):
        return config.setting("CANDOR_ADMIN_PASSWORD")
    if not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("Password for the new administrator: ")
    if getpass.getpass("Same password again: ") != first:
        print("create-admin: the two passwords differ; nothing created", file=sys.stderr)
        return ""
    return first


def _create_admin(args: argparse.Namespace) -> int:
    from analysis.errors import FieldError
    from analysis.services import users as user_admin
    from analysis.store import db
    from analysis.store.access import SYSTEM

    password = _password()
    if password is None:
        print(
            "create-admin: set CANDOR_ADMIN_PASSWORD or run it on a terminal to type the "
            "password; nothing created",
            file=sys.stderr,
        )
        return 2
    if not password:
        return 2
    db.upgrade()
    try:
        with db.session_scope() as session:
            user = user_admin.create_user(
                session,
                SYSTEM,
                email=args.email,
                display_name=args.name,
                role="admin",
                password=password,
            )
            email = user.email
    except FieldError as exc:
        print(f"create-admin: {exc.field}: {exc}; nothing created", file=sys.stderr)
        return 2
    print(f"administrator {email} created; sign in and add the clinic's staff on the Users page")
    return 0
