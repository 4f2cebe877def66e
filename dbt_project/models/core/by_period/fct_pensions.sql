-- One row per CSPF pensioner per period; a new pensioner retired within the period.
-- Incremental by period (see fct_insured_employment).
with

pensioners as (

    select * from {{ ref('stg_cspf__pensioners') }}

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
{% if is_incremental() %}
    where {{ changed_periods('final', ['submission_id']) }}
{% endif %}
