-- One row per TVTO trainee and course ending in the (Gregorian) period, followed up in SSO:
-- was the person an insured employee in the Jalali month six months after the course ended?
-- The follow-up is unknown until that month's SSO delivery is accepted. Rebuilt period by
-- period: a TVTO period when its delivery or one of its follow-up SSO months changes.
{% set partitions = build_partitions(none, lineage_sql=training_lineage()) %}
{{ config(post_hook="{{ record_build_state(none, lineage_sql=training_lineage()) }}") }}

with

trainees as (

    select * from {{ ref('stg_tvto__trainees') }}
    where {{ in_submissions('submission_id', partitions) }}

),

jalali_months as (

    select * from {{ ref('stg_anbar__jalali_months') }}

),

follow_up_jobs as (

    -- the insured jobs of the SSO deliveries these periods follow up (index on period)
    select
        person_key,
        period
    from {{ ref('fct_insured_employment') }}
    where {{ in_submissions('submission_id', partitions) }}

),

sso_periods as (

    select distinct period from follow_up_jobs

),

insured_in_period as (

    select distinct
        person_key,
        period
    from follow_up_jobs
    where person_key in (select trainees.person_key from trainees)

),

followed as (

    select
        trainees.trainee_course_id,
        trainees.period,
        trainees.period_start,
        trainees.period_end,
        trainees.person_key,
        trainees.course_code,
        trainees.isco_code,
        trainees.sex,
        trainees.birth_date,
        trainees.course_start,
        trainees.course_end,
        trainees.training_hours,
        trainees.course_result,
        trainees.quality_flags,
        trainees.submission_id,
        follow_up.period as follow_up_period,
        coalesce(trainees.province_code, '_U') as province_code,
        {{ age_band('trainees.birth_date', 'trainees.period_start') }} as age_band,
        case
            when sso_periods.period is null then null
            else insured_in_period.person_key is not null
        end as is_insured_after_6_months
    from trainees
    left join jalali_months as follow_up
        on
            cast(trainees.course_end + interval '6 months' as date) >= follow_up.period_start
            and cast(trainees.course_end + interval '6 months' as date) < follow_up.period_end
    left join sso_periods
        on follow_up.period = sso_periods.period
    left join insured_in_period
        on
            trainees.person_key = insured_in_period.person_key
            and follow_up.period = insured_in_period.period

)

select * from followed
where {{ in_partitions('period', partitions) }}
