"""``anbar access``: the access plan, users and the committee's access decisions (docs/access.md)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _manifest(args):
    from pathlib import Path

    from anbar import access

    path = Path(args.manifest) if args.manifest else access.manifest_path()
    if not path.exists():
        raise access.AccessError(f"no dbt manifest at {path}: run `python -m anbar.dbt parse` (or make dbt-parse)")
    return path


def _bootstrap(conn, registry) -> None:
    """What a new warehouse needs before its first plan, as the administrator (the service roles may not exist
    yet): the schemas and tables of the registry (``anbar bootstrap``) and the audit's logging (docs/audit.md)."""
    from anbar import audit, ddl

    ddl.bootstrap(conn, registry)
    warnings = audit.install(conn)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    logged = "" if warnings else "; every statement of the warehouse is logged for the audit"
    print(f"warehouse schemas and tables are up to date{logged}")


def _apply(args, conn, registry) -> int:
    from anbar import access

    if args.bootstrap:
        if args.dry_run:
            raise access.AccessError("--bootstrap changes the warehouse: leave it out of --dry-run")
        _bootstrap(conn, registry)
    plan = access.build_plan(conn, registry, _manifest(args))
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        conn.rollback()
        print(plan.sql(), end="")
        return 0
    access.apply_plan(conn, plan)
    roles = access.set_service_passwords(conn)
    print(
        f"access plan applied to {plan.database}: {sum(len(s.statements) for s in plan.steps)} statement(s), "
        f"{len(plan.grants)} decision grant(s)"
    )
    for role in roles:
        print(f"password of {role} set from {access.PASSWORD_ENV[role]}")
    return 0


def _user(args, conn, registry) -> int:
    from anbar import access

    password = os.environ.get(args.password_env) if args.password_env else None
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name} (empty: none, the role cannot log in with one): ")
    access.add_user(conn, args.name, args.role, password or None)
    print(f"{args.name}: login role, member of {access.USER_KINDS[args.role]}" + ("" if password else " (no password)"))
    return 0


def _decide(args, conn, registry) -> int:
    from anbar import access, expected

    try:
        expires_on = expected.parse_day(args.expires)
    except ValueError as exc:
        raise access.AccessError(f"--expires: {exc}") from None
    decision_id, grants = access.decide(
        conn,
        registry,
        _manifest(args),
        researcher=args.researcher,
        purpose=args.purpose,
        decision_ref=args.decision,
        expires_on=expires_on,
        tier=args.tier,
        models=_split(args.models),
        datasets=_split(args.datasets),
    )
    role = access.decision_role(decision_id)
    print(
        f"decision {decision_id} ({args.decision}) recorded and applied: {args.researcher} holds {role} "
        f"through {expires_on} ({expected.jalali(expires_on)}), Tehran"
    )
    for _, schema, table, columns, _ in grants:
        print(f"  {schema}.{table}: {', '.join(columns)}")
    return 0


def _list(args, conn, registry) -> int:
    from anbar import access, expected
    from anbar.cli import _table

    rows = access.list_decisions(conn, status=args.status)
    headers = ["id", "researcher", "tier", "models", "purpose", "decision", "expires", "status", "ended"]
    print(
        _table(
            headers,
            [
                [
                    str(d.decision_id),
                    d.researcher,
                    d.tier,
                    ",".join(d.models),
                    d.purpose,
                    d.decision_ref,
                    f"{d.expires_on} ({expected.jalali(d.expires_on)})",
                    d.status,
                    expected.shown(d.revoked_at) + (f" by {d.revoked_by}: {d.revoke_reason}" if d.revoked_at else ""),
                ]
                for d in rows
            ],
        )
    )
    return 0


def _revoke(args, conn, registry) -> int:
    from anbar import access

    access.revoke(conn, args.decision_id, args.reason)
    print(f"decision {args.decision_id} revoked: {access.decision_role(args.decision_id)} is gone")
    return 0


def _expire(args, conn, registry) -> int:
    from anbar import access

    ended = access.expire(conn)
    for d in ended:
        print(f"decision {d.decision_id} of {d.researcher} expired (valid through {d.expires_on}): revoked")
    if not ended:
        print("no approved decision has expired")
    return 0


ACTIONS = {"apply": _apply, "user": _user, "decide": _decide, "list": _list, "revoke": _revoke, "expire": _expire}


def run(args) -> int:
    from anbar import access
    from anbar.registry import load_registry

    try:
        conn = access.connect_admin()
    except access.AccessError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        return ACTIONS[args.access_action](args, conn, load_registry(args.registry))
    except access.AccessError as exc:
        conn.rollback()
        print(exc, file=sys.stderr)
        return 1
    finally:
        conn.close()


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``anbar access ...`` to the command line."""
    p = sub.add_parser("access", help="access tiers as PostgreSQL roles and grants; the committee's access decisions")
    actions = p.add_subparsers(dest="access_action", required=True)

    a = actions.add_parser("apply", help="create the roles and apply the grants the registry and dbt manifest imply")
    a.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    a.add_argument("--manifest", help="dbt manifest (default: dbt_project/target/manifest.json)")
    a.add_argument(
        "--bootstrap",
        action="store_true",
        help="first create or update the warehouse tables from the registry and the audit's logging, as the "
        "administrator (a new installation: docker-compose.yml's anbar-access-apply)",
    )

    a = actions.add_parser("user", help="a person's own login role")
    a.add_argument("user_action", choices=["add"])
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=sorted(["analyst", "researcher", "auditor"]))
    a.add_argument("--password-env", help="read the password from this environment variable (default: prompt)")

    a = actions.add_parser("decide", help="record an approved committee decision and grant it now")
    a.add_argument("--researcher", required=True, help="the researcher's login role (anbar access user add)")
    a.add_argument("--datasets", action="append", help="org/dataset[,...]: the models deriving only from these")
    a.add_argument("--models", action="append", help="model[,...] of intermediate or core")
    a.add_argument("--tier", choices=["licensed", "enclave"], default="licensed", help="enclave: enclave columns too")
    a.add_argument("--purpose", required=True)
    a.add_argument("--decision", required=True, help="the committee's decision reference, e.g. 1404/09/12-17")
    a.add_argument("--expires", required=True, help="last valid day, Tehran (YYYY-MM-DD or Jalali YYYY/MM/DD)")
    a.add_argument("--manifest", help="dbt manifest (default: dbt_project/target/manifest.json)")

    a = actions.add_parser("list", help="every access decision, kept forever")
    a.add_argument("--status", choices=["approved", "expired", "revoked"])

    a = actions.add_parser("revoke", help="revoke an approved decision now")
    a.add_argument("decision_id", type=int)
    a.add_argument("--reason", required=True)

    actions.add_parser("expire", help="revoke every approved decision whose last day (Tehran) has passed")
    p.set_defaults(func=run)
