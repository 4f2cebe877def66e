"""The Data Docs DAG: GX Data Docs of the deliveries decided since it last ran.

An ingest's ``conclude`` records a decided delivery's site as pending (:func:`anbar.data_docs.schedule_from_results`:
the results the pass kept beside the delivery, no GX import in the ingest) and updates the Asset
:data:`DOCS_PENDING`; ``anbar_data_docs`` then builds every pending site in one process, so Great Expectations is
imported once for all the deliveries of a run of the ingest, and never on an ingest task.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, Asset, task

from anbar.dag_defaults import START_DATE, default_args

log = logging.getLogger(__name__)

DAG_ID = "anbar_data_docs"
DOCS_PENDING = Asset(name="anbar_data_docs_pending", uri="anbar://data-docs/pending", group="anbar-data-docs")

DOC_MD = """
# anbar_data_docs — the GX Data Docs of decided deliveries

Runs when an ingest's `conclude` has recorded a delivery's Data Docs as pending (the Asset
`anbar_data_docs_pending`). `build_pending` renders every pending site under `ANBAR_DATA_DOCS_DIR` from
the GX validation results the pass kept beside the delivery (`validation-results.json` in the landing
archive), identifiers masked; they are served at `/anbar-docs/<org>/<dataset>/<period>/v<version>/`, the
address the feedback mail already quoted. Until then the Data Docs index lists the site as "being built".

## Triage

- **A site stays pending** (the task logs `NOT BUILT`): its results are gone from the landing archive, or
  GX failed to render them (the warning says which). Data Docs never change a decision; the ledger, the
  feedback report and `findings.csv` say the same. `anbar docs build` retries every pending site by hand.
- **The task fails**: the data docs volume is full or not writable by the workers. Data Docs are
  rebuildable and not backed up: clearing the run builds whatever is still pending.
"""


def build_data_docs_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="GX Data Docs of the deliveries decided since the last run",
        schedule=[DOCS_PENDING],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        tags=["anbar", "data-docs"],
        doc_md=DOC_MD,
    ) as dag:

        @task
        def build_pending() -> dict:
            """Build every pending site (GX imported only when there is one)."""
            from anbar import data_docs, settings

            pending = data_docs.pending_sites(settings.data_docs_dir())
            built = [str(site) for site in pending if data_docs.build_pending(site)]
            not_built = [str(site) for site in pending if str(site) not in built]
            log.info("built %d Data Docs site(s): %s", len(built), ", ".join(built) or "-")
            if not_built:
                log.warning("NOT BUILT (the warning above says why): %s", ", ".join(not_built))
            return {"built": built, "not_built": not_built}

        build_pending()
    return dag
