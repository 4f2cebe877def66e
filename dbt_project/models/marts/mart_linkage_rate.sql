-- Linkage rate per dataset and period: of the persons a delivery names, how many the warehouse
-- also knows from another dataset (any period). Published under disclosure control.
{{ config(post_hook="{{ disclosure_control(['dataset', 'period'], 'persons', ['linked_persons', 'linkage_rate']) }}") }}

with

records as (

    select * from {{ ref('int_person_records') }}

),

persons as (

    select * from {{ ref('dim_person') }}

),

per_period as (

    select
        records.dataset,
        records.period,
        count(distinct records.person_key) as persons,
        count(distinct records.person_key) filter (where persons.is_linked) as linked_persons
    from records
    inner join persons
        on records.person_key = persons.person_key
    group by records.dataset, records.period

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
