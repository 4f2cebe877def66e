-- Insured employment by SSO period (Jalali month): persons and average insured wage, by
-- province of the workplace, ISIC section, age band and sex, and their totals ('_T' = all).
-- Published under disclosure control (macros/disclosure_control.sql).
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('fct_insured_employment')) %}
{{ config(post_hook=[
    "{{ disclosure_control('mart_insured_employment', none, lineage_sql=upstream_lineage('fct_insured_employment')) }}",
    "{{ record_build_state(none, lineage_sql=upstream_lineage('fct_insured_employment')) }}",
]) }}

with

jobs as (

    select * from {{ ref('fct_insured_employment') }}
    where {{ in_partitions('period', partitions) }}

),

cells as (

    select
        period,
        {{ mart_cells(['province_code', 'isic_section', 'age_band']) }},
        count(distinct person_key) as insured_persons,
        round(avg(insured_wage_rials), 0) as avg_insured_wage_rials
    from jobs
    group by {{ mart_grouping_sets(['province_code', 'isic_section', 'age_band']) }}

)

select
    {{ surrogate_key(['period', 'province_code', 'isic_section', 'sex', 'age_band']) }} as cell_id,
    period,
    province_code,
    isic_section,
    sex,
    age_band,
    insured_persons,
    avg_insured_wage_rials,
    false as is_suppressed
from cells
