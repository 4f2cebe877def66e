-- The person register: one row per pseudonymised person seen in any accepted delivery, with
-- the current attributes (the latest record wins; SSO and CSPF, registers of insured and
-- pensioned persons, before TVTO) and which sources know them. Linked = known to two or more
-- datasets (the linkage the warehouse exists for).
with

records as (

    select * from {{ ref('int_person_records') }}

),

ranked as (

    select
        person_key,
        sex,
        birth_date,
        province_code,
        row_number() over (
            partition by person_key
            order by
                period_start desc,
                case dataset when 'sso__insured_persons' then 0 when 'cspf__pensioners' then 1 when 'swo__beneficiaries' then 2 else 3 end
        ) as recency_rank
    from records

),

current_attributes as (

    select
        person_key,
        sex,
        birth_date,
        province_code
    from ranked
    where recency_rank = 1

),

sources as (

    select
        person_key,
        min(period_start) as first_seen_on,
        max(period_start) as last_seen_on,
        count(distinct dataset) as datasets_seen,
        bool_or(dataset = 'sso__insured_persons') as is_sso_insured,
        bool_or(dataset = 'tvto__trainees') as is_tvto_trainee,
        bool_or(dataset = 'cspf__pensioners') as is_cspf_pensioner,
        bool_or(dataset = 'swo__beneficiaries') as is_swo_beneficiary,
        count(distinct sex) > 1 or count(distinct birth_date) > 1 as has_conflicting_demographics
    from records
    group by person_key

)

select
    sources.person_key,
    current_attributes.sex,
    current_attributes.birth_date,
    current_attributes.province_code,
    sources.first_seen_on,
    sources.last_seen_on,
    sources.datasets_seen,
    sources.is_sso_insured,
    sources.is_tvto_trainee,
    sources.is_cspf_pensioner,
    sources.is_swo_beneficiary,
    sources.has_conflicting_demographics,
    sources.datasets_seen > 1 as is_linked
from sources
inner join current_attributes
    on sources.person_key = current_attributes.person_key
