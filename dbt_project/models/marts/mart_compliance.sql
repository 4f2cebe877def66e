-- Compliance of every expected submission (organisation x dataset x period): whether it was due,
-- received and on time, days late, versions, accepted first time, and its quality score per
-- principle. Statuses are as of the run (status_on). Ledger figures only, no person data: a plain
-- table rebuilt whole at every run (it is small), outside the period-by-period build state.
{{ config(materialized='table', meta={'partition_key': none}) }}

with

calendar as (

    select * from {{ ref('stg_anbar__expected_submissions') }}

),

submission_status as (

    select * from {{ ref('stg_anbar__submission_status') }}

),

quality_scores as (

    select * from {{ ref('stg_anbar__quality_scores') }}

),

joined as (

    select
        calendar.expected_submission_id,
        calendar.org,
        calendar.dataset,
        calendar.period,
        calendar.period_start,
        calendar.period_end,
        calendar.due_date,
        calendar.grace_until,
        calendar.extension_decision,
        submission_status.status,
        submission_status.status_on,
        submission_status.is_received,
        submission_status.days_late,
        submission_status.versions,
        submission_status.resubmissions,
        submission_status.first_received_at,
        submission_status.accepted_at,
        submission_status.latest_submission_id,
        quality_scores.score_conversion,
        quality_scores.score_system,
        quality_scores.score_consistency,
        quality_scores.score_quality,
        -- DHIS2 counts a report as expected once its deadline has passed; one not yet due counts nowhere.
        calendar.due_date < submission_status.status_on as is_expected,
        coalesce(submission_status.on_time, false) as is_on_time,
        coalesce(submission_status.accepted_first_time, false) as is_accepted_first_time
    from calendar
    inner join submission_status
        on calendar.expected_submission_id = submission_status.expected_submission_id
    left join quality_scores
        on submission_status.latest_submission_id = quality_scores.scored_submission_id

)

select * from joined
