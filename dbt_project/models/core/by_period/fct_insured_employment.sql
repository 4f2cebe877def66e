-- One row per insured job (person x workshop) per SSO period, with the workplace's province and
-- ISIC section from the workplaces delivery of the same period. Incremental by period
-- (macros/incremental_by_period.sql): a run reads and rebuilds only the periods whose accepted
-- delivery (of either dataset) changed, so its cost does not grow with the length of the history.
{% set partitions = build_partitions(['sso__insured_persons', 'sso__workplaces']) %}
{{ config(
    post_hook="{{ record_build_state(['sso__insured_persons', 'sso__workplaces']) }}",
    indexes=[{'columns': ['period']}, {'columns': ['submission_id']}],
) }}

with

insured_persons as (

    select * from {{ ref('stg_sso__insured_persons') }}
    where {{ in_submissions('submission_id', partitions) }}

),

workplaces as (

    select * from {{ ref('stg_sso__workplaces') }}
    where {{ in_submissions('submission_id', partitions) }}

),

joined as (

    select
        insured_persons.insured_job_id,
        insured_persons.period,
        insured_persons.period_start,
        insured_persons.period_end,
        insured_persons.person_key,
        insured_persons.workshop_code,
        insured_persons.sex,
        insured_persons.birth_date,
        insured_persons.insurance_type,
        insured_persons.employment_start,
        insured_persons.days_worked,
        insured_persons.insured_wage_rials,
        insured_persons.quality_flags,
        insured_persons.submission_id,
        workplaces.submission_id as workplaces_submission_id,
        coalesce(workplaces.province_code, '_U') as province_code,
        coalesce(workplaces.isic_section, '_U') as isic_section,
        {{ age_band('insured_persons.birth_date', 'insured_persons.period_start') }} as age_band,
        coalesce(
            insured_persons.employment_start >= insured_persons.period_start
            and insured_persons.employment_start < insured_persons.period_end,
            false
        ) as is_new_employment
    from insured_persons
    left join workplaces
        on
            insured_persons.period = workplaces.period
            and insured_persons.workshop_code = workplaces.workshop_code

)

select * from joined
where {{ in_partitions('period', partitions) }}
