-- One row per CSPF pensioner per period; a new pensioner retired within the period.
-- Incremental by period (see fct_insured_employment).
{% set partitions = build_partitions(['cspf__pensioners']) %}
{{ config(post_hook="{{ record_build_state(['cspf__pensioners']) }}") }}

with

pensioners as (

    select * from {{ ref('stg_cspf__pensioners') }}
    where {{ in_submissions('submission_id', partitions) }}

),

final as (

    select
        pensioners.pensioner_period_id,
        pensioners.period,
        pensioners.period_start,
        pensioners.period_end,
        pensioners.person_key,
        pensioners.sex,
        pensioners.birth_date,
        pensioners.pension_type,
        pensioners.retirement_date,
        pensioners.pension_amount_rials,
        pensioners.quality_flags,
        pensioners.submission_id,
        coalesce(pensioners.province_code, '_U') as province_code,
        {{ age_band('pensioners.birth_date', 'pensioners.period_start') }} as age_band,
        coalesce(
            pensioners.retirement_date >= pensioners.period_start
            and pensioners.retirement_date < pensioners.period_end,
            false
        ) as is_new_pensioner
    from pensioners

)

select * from final
where {{ in_partitions('period', partitions) }}
