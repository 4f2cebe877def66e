-- Accepted deliveries from the ledger, one row per delivery (every version), with the bounds of
-- their period in the organisation's calendar (from the registry, via the sources' meta): the
-- lineage of the models rebuilt period by period (macros/incremental_by_period.sql). For models
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

jalali_months as (

    {{ jalali_months() }}

)

select
    submissions.submission_id,
    submissions.dataset,
    submissions.period,
    submissions.version,
    submissions.accepted_at,
    case
        when submissions.dataset in ('{{ jalali | join("', '") }}') then jalali_months.period_start
        else {{ gregorian_period_start('submissions.period') }}
    end as period_start,
    case
        when submissions.dataset in ('{{ jalali | join("', '") }}') then jalali_months.period_end
        else {{ gregorian_period_end('submissions.period') }}
    end as period_end
from submissions
left join jalali_months
    on submissions.period = jalali_months.period
