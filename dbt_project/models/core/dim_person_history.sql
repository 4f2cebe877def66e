-- The person register with history (type 2): one row per person and stretch of periods over
-- which the sources agree on sex, birth date and province. valid_to is the start of the next
-- version (null for the current one).
with

records as (

    select
        person_key,
        period_start,
        sex,
        birth_date,
        province_code
    from {{ ref('int_person_records') }}

),

per_period as (

    -- one state per person and period start (the sources of that month, SSO first)
    select distinct on (person_key, period_start)
        person_key,
        period_start,
        sex,
        birth_date,
        province_code
    from records
    order by person_key asc, period_start asc, sex asc, birth_date asc, province_code asc

),

states as (

    select
        person_key,
        period_start,
        sex,
        birth_date,
        province_code,
        concat_ws(
            '|', coalesce(sex, '?'), coalesce(birth_date::text, '?'), coalesce(province_code, '?')
        ) as state
    from per_period

),

changes as (

    select
        person_key,
        period_start,
        sex,
        birth_date,
        province_code,
        coalesce(
            state <> lag(state) over (partition by person_key order by period_start), true
        ) as is_change
    from states

),

versions as (

    select
        person_key,
        period_start as valid_from,
        sex,
        birth_date,
        province_code
    from changes
    where is_change

)

select
    {{ surrogate_key(['person_key', 'valid_from']) }} as person_version_id,
    person_key,
    valid_from,
    lead(valid_from) over (partition by person_key order by valid_from) as valid_to,
    sex,
    birth_date,
    province_code,
    lead(valid_from) over (partition by person_key order by valid_from) is null as is_current
from versions
