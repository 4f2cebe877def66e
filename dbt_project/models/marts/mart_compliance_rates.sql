-- Reporting and on-time rates per organisation and period, as DHIS2 defines them: reports
-- received / reports expected x 100, and reports received on time / reports expected x 100,
-- over the organisation's datasets whose due date has passed (a report not yet due counts
-- nowhere). A rejected delivery was received; a late one counts in the first rate only.
{{ config(materialized='table', meta={'partition_key': none}) }}

with

compliance as (

    select * from {{ ref('mart_compliance') }}

),

counted as (

    select
        org,
        period,
        min(period_start) as period_start,
        min(period_end) as period_end,
        count(*) as datasets,
        count(*) filter (where is_expected) as expected_submissions,
        count(*) filter (where is_expected and is_received) as received_submissions,
        count(*) filter (where is_expected and is_on_time) as on_time_submissions,
        count(*) filter (where is_expected and is_accepted_first_time) as accepted_first_time_submissions

    from compliance
    group by org, period

),

rates as (

    select
        {{ surrogate_key(['org', 'period']) }} as compliance_rate_id,
        org,
        period,
        period_start,
        period_end,
        datasets,
        expected_submissions,
        received_submissions,
        on_time_submissions,
        accepted_first_time_submissions,
        round(100.0 * received_submissions / nullif(expected_submissions, 0), 1) as reporting_rate,
        round(100.0 * on_time_submissions / nullif(expected_submissions, 0), 1) as on_time_rate

    from counted

)

select * from rates
