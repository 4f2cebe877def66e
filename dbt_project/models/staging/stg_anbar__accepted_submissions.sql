-- Accepted deliveries from the ledger, one row per delivery (every version), with the bounds of
-- their period (a month, or a quarter or year where the committee approved one) in the
-- organisation's calendar (from the registry, via the sources' meta): the lineage of the models rebuilt period by period (macros/incremental_by_period.sql). For models
-- after staging, which may not read sources.
{%- set jalali = jalali_datasets() %}

with

submissions as (

    select
        submission_id,
        period,
        version,
        updated_at as accepted_at,
        org || '__' || dataset as dataset
    from {{ source('anbar', 'submissions') }}
    where status = 'accepted'

),

jalali_periods as (

    {{ jalali_periods() }}

)

select
    submissions.submission_id,
    submissions.dataset,
    submissions.period,
    submissions.version,
    submissions.accepted_at,
    case
        when submissions.dataset in ('{{ jalali | join("', '") }}') then jalali_periods.period_start
        else {{ gregorian_period_start('submissions.period') }}
    end as period_start,
    case
        when submissions.dataset in ('{{ jalali | join("', '") }}') then jalali_periods.period_end
        else {{ gregorian_period_end('submissions.period') }}
    end as period_end
from submissions
left join jalali_periods
    on submissions.period = jalali_periods.period
