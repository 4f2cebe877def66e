-- Every appearance of a person in an accepted delivery: one row per dataset, period and
-- person, with what that source says about them. The basis of the person register and of
-- linkage (the same person_key in two datasets is the same person). Rebuilt by dataset and
-- period (macros/incremental_by_period.sql), so a month costs the same whatever the history.
{% set partitions = build_partitions(person_record_groups(), by_dataset=true) %}
{{ config(
    materialized='incremental',
    unique_key=['dataset', 'period'],
    meta={'partition_key': "dataset || '/' || period"},
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['person_key']}, {'columns': ['dataset', 'period']}],
    post_hook="{{ record_build_state(person_record_groups(), by_dataset=true) }}",
) }}

with

sso as (

    -- the province of an insured person is their workplace's (the lowest code of several)
    select
        'sso__insured_persons' as dataset,
        insured_persons.period,
        insured_persons.period_start,
        insured_persons.period_end,
        insured_persons.person_key,
        min(insured_persons.sex) as sex,
        min(insured_persons.birth_date) as birth_date,
        min(workplaces.province_code) as province_code
    from {{ ref('stg_sso__insured_persons') }} as insured_persons
    left join {{ ref('stg_sso__workplaces') }} as workplaces
        on
            insured_persons.period = workplaces.period
            and insured_persons.workshop_code = workplaces.workshop_code
            and {{ in_submissions('workplaces.submission_id', partitions) }}
    where {{ in_submissions('insured_persons.submission_id', partitions) }}
    group by insured_persons.period, insured_persons.period_start, insured_persons.period_end, insured_persons.person_key

),

tvto as (

    select
        'tvto__trainees' as dataset,
        period,
        period_start,
        period_end,
        person_key,
        min(sex) as sex,
        min(birth_date) as birth_date,
        min(province_code) as province_code
    from {{ ref('stg_tvto__trainees') }}
    where {{ in_submissions('submission_id', partitions) }}
    group by period, period_start, period_end, person_key

),

cspf as (

    select
        'cspf__pensioners' as dataset,
        period,
        period_start,
        period_end,
        person_key,
        sex,
        birth_date,
        province_code
    from {{ ref('stg_cspf__pensioners') }}
    where {{ in_submissions('submission_id', partitions) }}

),

swo as (

    select
        'swo__beneficiaries' as dataset,
        period,
        period_start,
        period_end,
        person_key,
        min(sex) as sex,
        min(birth_date) as birth_date,
        min(province_code) as province_code
    from {{ ref('stg_swo__beneficiaries') }}
    where {{ in_submissions('submission_id', partitions) }}
    group by period, period_start, period_end, person_key

),

unioned as (

    select * from sso
    union all
    select * from tvto
    union all
    select * from cspf
    union all
    select * from swo

)

select
    {{ surrogate_key(['dataset', 'period', 'person_key']) }} as person_record_id,
    dataset,
    period,
    period_start,
    period_end,
    person_key,
    sex,
    birth_date,
    province_code
from unioned
where person_key is not null
