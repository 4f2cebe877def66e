"""The ingest engine: one vectorised pass per delivery, from the landed bytes to the decision.

DuckDB (in process, no extension: nothing is downloaded at run time) reads the delivered files once,
keeps a columnar rendering of the values as delivered beside them in the landing archive, converts
them (digits, letters, spaces, Jalali dates, types) and evaluates the suite's rules with Great
Expectations' semantics; the typed rows go to PostgreSQL in one COPY.

- :mod:`anbar.engine.duck`: the DuckDB connection (threads, memory limit, spill directory) and the
  conversion and check-digit rules as DuckDB macros, generated from :mod:`anbar.normalize` and
  :mod:`anbar.ids` like their PostgreSQL twins in :mod:`anbar.sql_functions`.
"""
