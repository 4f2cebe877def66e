{#- Rows of clean.<org>__<dataset> that belong to the latest accepted delivery of
    each period: the ledger is filtered to status = 'accepted' first, then ranked by
    version (newest first) within (org, dataset, period), so a superseded version and
    any rejected, failed or still-running delivery are never read. Adds the ledger's
    _version and _received_at to the clean columns. -#}
{% macro latest_accepted(org, dataset) -%}
    select
        clean_rows.*,
        latest_submissions.version as _version,
        latest_submissions.received_at as _received_at
    from {{ source('clean', org ~ '__' ~ dataset) }} as clean_rows
    inner join (
        select
            ranked.submission_id,
            ranked.version,
            ranked.received_at
        from (
            select
                submissions.submission_id,
                submissions.version,
                submissions.received_at,
                row_number() over (
                    partition by submissions.period
                    order by submissions.version desc, submissions.submission_id desc
                ) as version_rank
            from {{ source('anbar', 'submissions') }} as submissions
            where
                submissions.org = '{{ org }}'
                and submissions.dataset = '{{ dataset }}'
                and submissions.status = 'accepted'
        ) as ranked
        where ranked.version_rank = 1
    ) as latest_submissions
        on clean_rows._submission_id = latest_submissions.submission_id
{%- endmacro %}
