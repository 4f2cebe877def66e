-- One row per SWO beneficiary and type of support per period (Jalali month). Incremental by
-- period (see fct_insured_employment).
{% set partitions = build_partitions(['swo__beneficiaries']) %}
{{ config(post_hook="{{ record_build_state(['swo__beneficiaries']) }}") }}

with

beneficiaries as (

    select * from {{ ref('stg_swo__beneficiaries') }}
    where {{ in_submissions('submission_id', partitions) }}

),

final as (

    select
        beneficiaries.beneficiary_support_id,
        beneficiaries.period,
        beneficiaries.period_start,
        beneficiaries.period_end,
        beneficiaries.person_key,
        beneficiaries.sex,
        beneficiaries.birth_date,
        beneficiaries.support_type,
        beneficiaries.disability_type,
        beneficiaries.county_code,
        beneficiaries.support_start,
        beneficiaries.monthly_amount_rials,
        beneficiaries.quality_flags,
        beneficiaries.submission_id,
        coalesce(beneficiaries.province_code, '_U') as province_code,
        {{ age_band('beneficiaries.birth_date', 'beneficiaries.period_start') }} as age_band
    from beneficiaries

)

select * from final
where {{ in_partitions('period', partitions) }}
