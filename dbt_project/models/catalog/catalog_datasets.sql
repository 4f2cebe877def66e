-- The data catalog's datasets: one row per registry dataset, from the generated clean sources' meta (the
-- registry as dbt's graph has it, macros/catalog.sql), with what the ledger says of it: the last period
-- received and accepted, and the quality scores of the last period received.
with

registry as (

    {{ catalog_values(catalog_registry_datasets(), [
        'dataset_key', 'org', 'dataset', 'org_name_fa', 'org_name_en', 'description_fa', 'description_en',
        'periodicity', 'calendar', 'due_day', 'grace_days', 'transport', 'access_tier', 'schema_version',
        'primary_key', 'asset_uri', 'source_relation', 'variable_count',
    ]) }}

),

expected_submissions as (

    select * from {{ ref('stg_anbar__expected_submissions') }}

),

submission_status as (

    select * from {{ ref('stg_anbar__submission_status') }}

),

accepted_submissions as (

    select * from {{ ref('stg_anbar__accepted_submissions') }}

),

quality_scores as (

    select * from {{ ref('stg_anbar__quality_scores') }}

),

received as (

    select
        expected_submissions.period,
        submission_status.latest_submission_id,
        expected_submissions.org || '__' || expected_submissions.dataset as dataset_key,
        row_number() over (
            partition by expected_submissions.org, expected_submissions.dataset
            order by expected_submissions.period_start desc, expected_submissions.period desc
        ) as recency
    from expected_submissions
    inner join submission_status
        on expected_submissions.expected_submission_id = submission_status.expected_submission_id
    where submission_status.is_received

),

last_received as (

    select
        received.dataset_key,
        received.period,
        received.latest_submission_id,
        quality_scores.score_conversion,
        quality_scores.score_system,
        quality_scores.score_consistency,
        quality_scores.score_quality
    from received
    left join quality_scores
        on received.latest_submission_id = quality_scores.scored_submission_id
    where received.recency = 1

),

accepted as (

    select
        dataset as dataset_key,
        period,
        period_start,
        period_end,
        submission_id,
        version,
        accepted_at,
        row_number() over (partition by dataset order by period_start desc, period desc, version desc) as recency,
        row_number() over (partition by dataset order by period_start asc, period asc, version desc) as age
    from accepted_submissions

),

accepted_periods as (

    select
        dataset_key,
        count(distinct period) as periods_accepted,
        max(period_start) filter (where age = 1) as first_period_start,
        max(period) filter (where age = 1) as first_period_accepted,
        max(period) filter (where recency = 1) as last_period_accepted,
        max(period_end) filter (where recency = 1) as last_period_end,
        max(submission_id) filter (where recency = 1) as last_accepted_submission_id,
        max(accepted_at) filter (where recency = 1) as last_accepted_at
    from accepted
    group by dataset_key

),

final as (

    select
        registry.dataset_key,
        registry.org,
        registry.dataset,
        registry.org_name_fa,
        registry.org_name_en,
        registry.description_fa,
        registry.description_en,
        registry.periodicity,
        registry.calendar,
        registry.transport,
        registry.access_tier,
        registry.primary_key,
        registry.asset_uri,
        registry.source_relation,
        last_received.period as last_period_received,
        last_received.latest_submission_id as last_received_submission_id,
        accepted_periods.first_period_accepted,
        accepted_periods.last_period_accepted,
        accepted_periods.last_accepted_submission_id,
        accepted_periods.last_accepted_at,
        accepted_periods.first_period_start as coverage_start,
        accepted_periods.last_period_end as coverage_end,
        last_received.score_conversion,
        last_received.score_system,
        last_received.score_consistency,
        last_received.score_quality,
        cast(registry.due_day as integer) as due_day,
        cast(registry.grace_days as integer) as grace_days,
        cast(registry.schema_version as integer) as schema_version,
        cast(registry.variable_count as integer) as variable_count,
        coalesce(accepted_periods.periods_accepted, 0) as periods_accepted,
        -- The mean of the principles' scores that were evaluated (null: none was).
        (
            select round(avg(scores.score), 1)
            from (
                values
                (last_received.score_conversion),
                (last_received.score_system),
                (last_received.score_consistency),
                (last_received.score_quality)
            ) as scores (score)
        ) as score_overall
    from registry
    left join last_received
        on registry.dataset_key = last_received.dataset_key
    left join accepted_periods
        on registry.dataset_key = accepted_periods.dataset_key

)

select * from final
