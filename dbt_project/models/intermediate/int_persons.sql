with

sso_insured_persons as (

    select * from {{ ref('stg_sso__insured_persons') }}

),

tvto_trainees as (

    select * from {{ ref('stg_tvto__trainees') }}

),

person_records as (

    select
        person_key,
        'sso' as source_org,
        period,
        period_start,
        sex,
        birth_date
    from sso_insured_persons

    union all

    select
        person_key,
        'tvto' as source_org,
        period,
        period_start,
        sex,
        birth_date
    from tvto_trainees

),

ranked_records as (

    -- SSO (insurance register) is preferred for demographics; within a source the
    -- most recent period wins
    select
        person_key,
        sex,
        birth_date,
        row_number() over (
            partition by person_key
            order by
                case when source_org = 'sso' then 0 else 1 end,
                period_start desc nulls last,
                period desc
        ) as record_rank
    from person_records

),

demographics as (

    select
        person_key,
        sex,
        birth_date
    from ranked_records
    where record_rank = 1

),

persons as (

    select
        person_key,
        min(period_start) as first_seen_on,
        max(period_start) as last_seen_on,
        count(distinct sex) > 1 or count(distinct birth_date) > 1 as has_conflicting_demographics
    from person_records
    group by person_key

),

sso_periods as (

    select
        person_key,
        min(period) as sso_first_period,
        max(period) as sso_last_period,
        count(distinct period) as sso_periods_seen
    from sso_insured_persons
    group by person_key

),

tvto_periods as (

    select
        person_key,
        min(period) as tvto_first_period,
        max(period) as tvto_last_period,
        count(*) as tvto_courses
    from tvto_trainees
    group by person_key

),

final as (

    select
        persons.person_key,
        demographics.sex,
        demographics.birth_date,
        sso_periods.sso_first_period,
        sso_periods.sso_last_period,
        tvto_periods.tvto_first_period,
        tvto_periods.tvto_last_period,
        persons.first_seen_on,
        persons.last_seen_on,
        persons.has_conflicting_demographics,
        sso_periods.person_key is not null as is_sso_insured,
        tvto_periods.person_key is not null as is_tvto_trainee,
        coalesce(sso_periods.sso_periods_seen, 0) as sso_periods_seen,
        coalesce(tvto_periods.tvto_courses, 0) as tvto_courses

    from persons
    inner join demographics
        on persons.person_key = demographics.person_key
    left join sso_periods
        on persons.person_key = sso_periods.person_key
    left join tvto_periods
        on persons.person_key = tvto_periods.person_key

)

select * from final
