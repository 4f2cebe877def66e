-- TVTO trainees whose course ended in the (Gregorian) period and how many of them were insured
-- employees six months later (TVTO linked to SSO on person_key), by province of the training
-- centre, course result, age band and sex, and their totals ('_T'). insured_after_6_months counts
-- among the followed_up trainees (those whose follow-up month has an accepted SSO delivery). Published under
-- disclosure control.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('fct_training')) %}
{{ config(post_hook=[
    "{{ disclosure_control('mart_trainees', none, lineage_sql=upstream_lineage('fct_training')) }}",
    "{{ record_build_state(none, lineage_sql=upstream_lineage('fct_training')) }}",
]) }}

with

training as (

    select * from {{ ref('fct_training') }}
    where {{ in_partitions('period', partitions) }}

),

cells as (

    select
        period,
        {{ mart_cells(['province_code', 'course_result', 'age_band']) }},
        count(distinct person_key) as trainees,
        count(distinct person_key) filter (where is_insured_after_6_months is not null) as followed_up,
        count(distinct person_key) filter (where is_insured_after_6_months) as insured_after_6_months
    from training
    group by {{ mart_grouping_sets(['province_code', 'course_result', 'age_band']) }}

)

select
    {{ surrogate_key(['period', 'province_code', 'course_result', 'sex', 'age_band']) }} as cell_id,
    period,
    province_code,
    course_result,
    sex,
    age_band,
    trainees,
    followed_up,
    insured_after_6_months,
    false as is_suppressed
from cells
