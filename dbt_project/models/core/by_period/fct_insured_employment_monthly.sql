-- Built from the insured-employment fact (a table of this build), not from the staging views,
-- so it and the fact always describe the same deliveries, even when a delivery is accepted
-- while the warehouse is being built. Rebuilt period by period, like the fact.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('fct_insured_employment')) %}
{{ config(post_hook="{{ record_build_state(none, lineage_sql=upstream_lineage('fct_insured_employment')) }}") }}

with

insured_jobs as (

    select * from {{ ref('fct_insured_employment') }}
    where {{ in_partitions('period', partitions) }}

),

code_list_values as (

    select * from {{ ref('stg_ref__code_list_values') }}

),

provinces as (

    select
        code as province_code,
        label_fa as province_name_fa,
        label_en as province_name_en
    from code_list_values
    where code_list = 'province'

),

sexes as (

    select
        code as sex,
        label_fa as sex_label_fa,
        label_en as sex_label_en
    from code_list_values
    where code_list = 'sex'

),

aggregated as (

    select
        period,
        period_start,
        period_end,
        province_code,
        sex,
        count(distinct person_key) as insured_persons,
        count(*) as insured_jobs,
        sum(insured_wage_rials) as total_insured_wage_rials,
        round(avg(insured_wage_rials), 2) as avg_insured_wage_rials,
        sum(days_worked) as total_days_worked
    from insured_jobs
    group by
        period,
        period_start,
        period_end,
        province_code,
        sex

),

final as (

    select
        {{ surrogate_key(['aggregated.period', 'aggregated.province_code', 'aggregated.sex']) }}
            as insured_employment_monthly_id,
        aggregated.period,
        aggregated.period_start,
        aggregated.period_end,
        aggregated.province_code,
        provinces.province_name_fa,
        provinces.province_name_en,
        aggregated.sex,
        sexes.sex_label_fa,
        sexes.sex_label_en,
        aggregated.insured_persons,
        aggregated.insured_jobs,
        aggregated.total_insured_wage_rials,
        aggregated.avg_insured_wage_rials,
        aggregated.total_days_worked,
        aggregated.insured_persons < {{ var('small_cell_threshold') }} as is_small_cell

    from aggregated
    left join provinces
        on aggregated.province_code = provinces.province_code
    left join sexes
        on aggregated.sex = sexes.sex

)

select * from final
