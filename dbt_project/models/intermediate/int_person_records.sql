-- Every appearance of a person in an accepted delivery: one row per dataset, period and
-- person, with what that source says about them. The basis of the person register and of
-- linkage (the same person_key in two datasets is the same person).
with

sso as (

    -- the province of an insured person is their workplace's (the lowest code of several)
    select
        'sso__insured_persons' as dataset,
        insured_persons.period,
        insured_persons.period_start,
        insured_persons.person_key,
        min(insured_persons.sex) as sex,
        min(insured_persons.birth_date) as birth_date,
        min(workplaces.province_code) as province_code
    from {{ ref('stg_sso__insured_persons') }} as insured_persons
    left join {{ ref('stg_sso__workplaces') }} as workplaces
        on
            insured_persons.period = workplaces.period
            and insured_persons.workshop_code = workplaces.workshop_code
    group by insured_persons.period, insured_persons.period_start, insured_persons.person_key

),

tvto as (

    select
        'tvto__trainees' as dataset,
        period,
        period_start,
        person_key,
        min(sex) as sex,
        min(birth_date) as birth_date,
        min(province_code) as province_code
    from {{ ref('stg_tvto__trainees') }}
    group by period, period_start, person_key

),

cspf as (

    select
        'cspf__pensioners' as dataset,
        period,
        period_start,
        person_key,
        sex,
        birth_date,
        province_code
    from {{ ref('stg_cspf__pensioners') }}

),

swo as (

    select
        'swo__beneficiaries' as dataset,
        period,
        period_start,
        person_key,
        min(sex) as sex,
        min(birth_date) as birth_date,
        min(province_code) as province_code
    from {{ ref('stg_swo__beneficiaries') }}
    group by period, period_start, person_key

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
    person_key,
    sex,
    birth_date,
    province_code
from unioned
where person_key is not null
