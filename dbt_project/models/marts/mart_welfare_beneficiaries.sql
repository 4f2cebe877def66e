-- Welfare beneficiaries (persons) by SWO period (Jalali month), province, type of support, age
-- band and sex, and their totals ('_T'). Published under disclosure control.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('fct_welfare_benefits')) %}
{{ config(post_hook=[
    "{{ disclosure_control('mart_welfare_beneficiaries', none, lineage_sql=upstream_lineage('fct_welfare_benefits')) }}",
    "{{ record_build_state(none, lineage_sql=upstream_lineage('fct_welfare_benefits')) }}",
]) }}

with

benefits as (

    select * from {{ ref('fct_welfare_benefits') }}
    where {{ in_partitions('period', partitions) }}

),

cells as (

    select
        period,
        {{ mart_cells(['province_code', 'support_type', 'age_band']) }},
        count(distinct person_key) as beneficiaries
    from benefits
    group by {{ mart_grouping_sets(['province_code', 'support_type', 'age_band']) }}

)

select
    {{ surrogate_key(['period', 'province_code', 'support_type', 'sex', 'age_band']) }} as cell_id,
    period,
    province_code,
    support_type,
    sex,
    age_band,
    beneficiaries,
    false as is_suppressed
from cells
