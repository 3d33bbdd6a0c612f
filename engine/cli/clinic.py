"""``artds serve``, ``artds user …``, ``artds db upgrade`` and ``artds models sign|verify``: run
the app, look after its database of users (``$ARTDS_DATABASE_URL``) and sign its models'
manifest (``$ARTDS_MODELS_KEY`` or ``$ARTDS_MODELS_KEY_FILE``)."""

from __future__ import annotations

import argparse
import sys

from engine import settings
from engine.cli.common import InputError, input_errors
from engine.cli.flags import Commands, models_dir_flag

__all__ = ["add_db", "add_models", "add_serve", "add_user", "ensure_first_admin"]


def _open_store():
    from engine.platform.store import Store

    store = Store()
    try:
        store.upgrade()
    except Exception as err:  # unreachable server, bad URL, permissions: one line, exit 2
        raise InputError(f"database {store!r} could not be opened or migrated "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                         ) from err
    return store


def _read_password(args: argparse.Namespace, *, env: str, prompt: str) -> str:
    """A new password from stdin (``--password-stdin``), the environment, or a prompt (twice)."""
    import getpass

    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    if settings.env_password(env):
        return settings.env_password(env)
    if not sys.stdin.isatty():
        raise InputError(f"no password given: use --password-stdin, set {env}, or run in a "
                         "terminal to be asked")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise InputError("the two passwords differ")
    return first


def ensure_first_admin(store) -> None:
    """With no user in the database, create the first admin from ``$ARTDS_ADMIN_USER`` and
    ``$ARTDS_ADMIN_PASSWORD``, or from what the operator types; there is no default password."""

    from engine.platform.accounts import create_user

    if store.count_users() > 0:
        return
    username = settings.env_text(settings.ADMIN_USER_ENV)
    if not username or not settings.env_password(settings.ADMIN_PASSWORD_ENV):
        if not sys.stdin.isatty():
            raise InputError(
                "no user exists yet: set ARTDS_ADMIN_USER and ARTDS_ADMIN_PASSWORD, or create "
                "one with `artds user add --username NAME --role admin`")
        print("No user exists yet: create the first administrator.", file=sys.stderr)
        username = username or input("Administrator user name: ").strip()
    password = _read_password(argparse.Namespace(), env=settings.ADMIN_PASSWORD_ENV,
                              prompt=f"Password for {username}")
    with input_errors(ValueError):
        create_user(store, username, password, "admin", created_by="setup")
    print(f"created administrator {username}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    store = _open_store()
    ensure_first_admin(store)
    store.dispose()
    uvicorn.run("app.app:app", host=args.host, port=args.port, log_level="info",
                proxy_headers=args.proxy_headers, forwarded_allow_ips=args.forwarded_allow_ips)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from engine.platform.accounts import change_password, check_username, create_user
    from engine.platform.store import StoreError

    store = _open_store()
    try:
        if args.action == "add":
            check_username(args.username)
            password = _read_password(args, env=settings.PASSWORD_ENV,
                                      prompt=f"Password for {args.username}")
            user = create_user(store, args.username, password, args.role, created_by="cli")
            print(f"created {user.role} {user.username}")
        elif args.action == "list":
            for u in store.users():
                state = "active" if u.active else "disabled"
                print(f"{u.username}\t{u.role}\t{state}\t"
                      f"{u.created_at:%Y-%m-%d %H:%M} UTC\t{u.created_by}")
        elif args.action == "passwd":
            password = _read_password(args, env=settings.PASSWORD_ENV,
                                      prompt=f"New password for {args.username}")
            change_password(store, args.username, password, by="cli")
            print(f"changed the password of {args.username}; their open logins ended")
        elif args.action == "role":
            store.set_role(args.username, args.role, by="cli")
            print(f"{args.username} is now {args.role}")
        else:  # enable / disable
            store.set_active(args.username, args.action == "enable", by="cli")
            print(f"{args.username} {args.action}d")
    except (ValueError, StoreError) as err:
        raise InputError(str(err)) from err
    finally:
        store.dispose()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    store = _open_store()  # upgrades
    print(f"{store!r} at revision {store.current_revision()}")
    store.dispose()
    return 0


def add_serve(sub: Commands) -> None:
    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--proxy-headers", action="store_true",
                       help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a "
                       "load balancer)")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                       help="proxies trusted for X-Forwarded-* headers (default 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)


def add_user(sub: Commands) -> None:
    from engine.platform.store import ROLES

    username = argparse.ArgumentParser(add_help=False)
    username.add_argument("--username", required=True)
    role = argparse.ArgumentParser(add_help=False)
    role.add_argument("--role", required=True, choices=ROLES)

    user = sub.add_parser("user", help="manage users (the database of $ARTDS_DATABASE_URL)")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="create a user (password from a prompt, "
                              "--password-stdin or $ARTDS_PASSWORD)", parents=[username, role])
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    user_sub.add_parser("list", help="list users with role and state")
    passwd = user_sub.add_parser("passwd", parents=[username],
                                 help="set a new password (ends the user's open logins)")
    passwd.add_argument("--password-stdin", action="store_true")
    user_sub.add_parser("role", help="change a user's role", parents=[username, role])
    for action in ("enable", "disable"):
        user_sub.add_parser(action, help=f"{action} a user (disable also ends sessions)",
                            parents=[username])
    user.set_defaults(func=cmd_user)


def add_db(sub: Commands) -> None:
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="create or migrate the schema to the newest revision")
    db.set_defaults(func=cmd_db)


def cmd_models(args: argparse.Namespace) -> int:
    from engine.platform import registry

    root = settings.models_dir(args.models_dir)
    with input_errors(registry.ArtifactError):
        if args.action == "sign":
            metas = registry.sign_manifest(root)
            print(f"{root}: manifest signed ({len(metas)} artifacts checked against their "
                  "sha256)")
            return 0
        metas = registry.verify_manifest(root)
    warning = registry.unsigned_warning()
    state = "signature valid" if warning is None else "not signed: no key configured"
    print(f"{root}: {len(metas)} artifacts match their sha256; {state}")
    if warning is not None:
        print(f"artds models: warning: {warning}", file=sys.stderr)
    return 0


def add_models(sub: Commands) -> None:
    models = sub.add_parser(
        "models", help="sign or verify the models manifest (HMAC-SHA256 with $ARTDS_MODELS_KEY "
        "or the file $ARTDS_MODELS_KEY_FILE)")
    models_sub = models.add_subparsers(dest="action", required=True)
    models_sub.add_parser(
        "sign", parents=[models_dir_flag()],
        help="check every artifact against its sha256, then sign the manifest with the key")
    models_sub.add_parser(
        "verify", parents=[models_dir_flag()],
        help="check the signature (when a key is set) and every artifact's sha256")
    models.set_defaults(func=cmd_models)
