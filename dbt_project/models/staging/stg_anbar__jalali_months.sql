-- One row per Jalali month: its label (YYYY-MM, as suppliers write it), first day and the
-- first day after it. For models after staging, which may not read sources.
{{ jalali_months() }}
