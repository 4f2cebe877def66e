"""``python -m anbar.sim``: run or inspect the simulated supplier systems.

::

    python -m anbar.sim serve --state-dir DIR [--sftp-port P] [--api-port Q] [--smtp-port R]
        [--seed 42] [--defect-share 0.1] [--persons 4000] [--workplaces 300] [--civil-servants 0] [--scale 1.0]
        [--periods sso=1405-05,1405-06 --periods cspf=1405-05,1405-06 --periods swo=1405-05,1405-06
         --periods tvto=2026-08,2026-09]
        [--override sso/workplaces/1405-06=missing_column] [--api-page-size N]
    python -m anbar.sim publish --out DIR [same data options]     write SFTP outboxes only
    python -m anbar.sim plan [same data options]                  print the deliveries and defects
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from anbar.sim.defects import DEFECTS, SimConfig
from anbar.sim.serve import DEFAULT_PERIODS, Simulators, serve_forever


def _periods(values: list[str] | None) -> dict[str, list[str]]:
    if not values:
        return {k: list(v) for k, v in DEFAULT_PERIODS.items()}
    out: dict[str, list[str]] = {}
    for value in values:
        org, sep, labels = value.partition("=")
        if not sep or not org:
            raise argparse.ArgumentTypeError(f"--periods expects org=P1,P2,..., got {value!r}")
        out.setdefault(org.strip(), []).extend(x.strip() for x in labels.split(",") if x.strip())
    return out


def _overrides(values: list[str] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values or []:
        key, sep, defect = value.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--override expects org/dataset/period=defect, got {value!r}")
        out[key.strip()] = None if defect.strip().lower() in ("", "none") else defect.strip()
    return out


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--defect-share", type=float, default=0.1)
    p.add_argument("--persons", type=int, default=4000)
    p.add_argument("--workplaces", type=int, default=300)
    p.add_argument(
        "--civil-servants",
        type=int,
        default=0,
        help="extra persons who retire from the civil service at a steady pace (CSPF's new pensioners)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiplies persons, workplaces and civil servants")
    p.add_argument("--registry", type=Path, default=None, help="registry directory")
    p.add_argument(
        "--periods",
        action="append",
        metavar="ORG=P1,P2",
        help="published periods of an organisation (repeatable)",
    )
    p.add_argument(
        "--override",
        action="append",
        metavar="ORG/DATASET/PERIOD=DEFECT",
        help=f"force a defect (or 'none'); defects: {', '.join(DEFECTS)}",
    )


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        persons=max(1, round(args.persons * args.scale)),
        workplaces=max(1, round(args.workplaces * args.scale)),
        civil_servants=round(args.civil_servants * args.scale),
        defect_share=args.defect_share,
        overrides=_overrides(args.override),
        registry_root=args.registry,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anbar.sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the SFTP, API and SMTP simulators")
    serve.add_argument("--state-dir", type=Path, required=True)
    serve.add_argument("--sftp-port", type=int, default=0)
    serve.add_argument("--api-port", type=int, default=0)
    serve.add_argument("--smtp-port", type=int, default=0)
    serve.add_argument("--api-page-size", type=int, default=None)
    _data_options(serve)
    publish = sub.add_parser("publish", help="write the SFTP outboxes and exit")
    publish.add_argument("--out", type=Path, required=True)
    _data_options(publish)
    plan = sub.add_parser("plan", help="print every delivery with its defect (JSON)")
    _data_options(plan)
    args = parser.parse_args(argv)

    try:
        config = _config(args)
        periods = _periods(args.periods)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)

    if args.command == "serve":
        sims = Simulators(
            args.state_dir,
            config,
            periods,
            sftp_port=args.sftp_port,
            api_port=args.api_port,
            smtp_port=args.smtp_port,
            api_page_size=args.api_page_size,
        )
        asyncio.run(serve_forever(sims))
        return 0

    from anbar.sim.delivery import publish_sftp_periods
    from anbar.sim.extracts import as_period

    registry = config.registry
    if args.command == "publish":
        done = publish_sftp_periods(args.out, config.population(), registry, config, periods)
        json.dump([d.as_dict() for d in done], sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    out = []
    for org, labels in periods.items():
        organisation = registry.org(org)
        for label in labels:
            period = as_period(label, organisation.calendar).label
            for ds in organisation.datasets:
                out.append(
                    {
                        "org": org,
                        "dataset": ds.name,
                        "period": period,
                        "transport": organisation.transport.kind,
                        "defect": config.defect_for(org, ds.name, period),
                    }
                )
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
