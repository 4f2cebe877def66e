"""``python -m anbar.dbt parse | sources [--check]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anbar.dbt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("parse", help="write dbt_project/target/manifest.json (no database needed)")
    sub.add_parser("ensure-manifest", help="parse only if the manifest is missing or stale")
    src = sub.add_parser("sources", help="regenerate dbt_project/models/staging/_sources.yml")
    src.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    args = parser.parse_args(argv)

    from anbar.dbt import dbt_parse, ensure_manifest

    if args.command == "parse":
        print(dbt_parse())
        return 0
    if args.command == "ensure-manifest":
        print(ensure_manifest())
        return 0

    from anbar.dbt.sources import check, default_path, write_sources
    from anbar.registry import load_registry

    registry = load_registry()
    if args.check:
        if check(registry):
            print(f"{default_path()} is current")
            return 0
        print(f"{default_path()} is stale: run `python -m anbar.dbt sources`", file=sys.stderr)
        return 1
    print(write_sources(registry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
