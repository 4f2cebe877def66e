-- Civil-service pensioners who retired in the period (Jalali month), by province, pension
-- type, age band and sex, and their totals ('_T'). Published under disclosure control.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('fct_pensions')) %}
{{ config(post_hook=[
    "{{ disclosure_control('mart_new_pensioners', none, lineage_sql=upstream_lineage('fct_pensions')) }}",
    "{{ record_build_state(none, lineage_sql=upstream_lineage('fct_pensions')) }}",
]) }}

with

pensions as (

    select * from {{ ref('fct_pensions') }}
    where is_new_pensioner and {{ in_partitions('period', partitions) }}

),

cells as (

    select
        period,
        {{ mart_cells(['province_code', 'pension_type', 'age_band']) }},
        count(distinct person_key) as new_pensioners
    from pensions
    group by {{ mart_grouping_sets(['province_code', 'pension_type', 'age_band']) }}

)

select
    {{ surrogate_key(['period', 'province_code', 'pension_type', 'sex', 'age_band']) }} as cell_id,
    period,
    province_code,
    pension_type,
    sex,
    age_band,
    new_pensioners,
    false as is_suppressed
from cells
