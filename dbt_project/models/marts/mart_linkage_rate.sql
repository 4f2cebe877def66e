-- Linkage rate per dataset and period: of the persons a delivery names, how many another
-- dataset already knew by the end of that period (the same person_key in a period that starts
-- before this one ends). As of the period, so a month's rate does not move when later months
-- arrive, and a run rebuilds only the periods whose deliveries (or an earlier other delivery)
-- changed. Published under disclosure control.
{% set partitions = build_partitions(none, lineage_sql=linkage_lineage()) %}
{{ config(
    unique_key=['dataset', 'period'],
    meta={'partition_key': "dataset || '/' || period"},
    post_hook=[
        "{{ disclosure_control('mart_linkage_rate', none, by_dataset=true, lineage_sql=linkage_lineage()) }}",
        "{{ record_build_state(none, lineage_sql=linkage_lineage()) }}",
    ],
) }}

with

in_scope as (

    select * from {{ ref('int_person_records') }}
    where {{ in_partitions("dataset || '/' || period", partitions) }}

),

persons as (

    select * from {{ ref('dim_person') }}

),

marked as (

    -- when the other datasets first named the person (the register keeps it per dataset)
    select
        in_scope.dataset,
        in_scope.period,
        in_scope.person_key,
        coalesce(
            case in_scope.dataset
                when 'sso__insured_persons'
                    then least(persons.tvto_trainee_since, persons.cspf_pensioner_since, persons.swo_beneficiary_since)
                when 'tvto__trainees'
                    then least(persons.sso_insured_since, persons.cspf_pensioner_since, persons.swo_beneficiary_since)
                when 'cspf__pensioners'
                    then least(persons.sso_insured_since, persons.tvto_trainee_since, persons.swo_beneficiary_since)
                when 'swo__beneficiaries'
                    then least(persons.sso_insured_since, persons.tvto_trainee_since, persons.cspf_pensioner_since)
            end < in_scope.period_end,
            false
        ) as is_linked
    from in_scope
    inner join persons
        on in_scope.person_key = persons.person_key

),

per_period as (

    select
        dataset,
        period,
        count(distinct person_key) as persons,
        count(distinct person_key) filter (where is_linked) as linked_persons
    from marked
    group by dataset, period

)

select
    {{ surrogate_key(['dataset', 'period']) }} as linkage_id,
    dataset,
    period,
    persons,
    linked_persons,
    round(linked_persons::numeric / nullif(persons, 0), 4) as linkage_rate,
    false as is_suppressed
from per_period
