with

source as (

    {{ latest_accepted('swo', 'beneficiaries') }}

),

jalali_months as (

    {{ jalali_months() }}

),

renamed as (

    select
        -- period
        source._period as period,
        jalali_months.period_start,
        jalali_months.period_end,

        -- person
        {{ pseudonymise('source.national_id') }} as person_key,

        -- attributes
        source.sex,
        source.birth_date,
        source.support_type,
        source.disability_type,
        source.province as province_code,
        source.county as county_code,
        source.support_start,

        -- measures
        source.monthly_amount as monthly_amount_rials,

        -- lineage
        source._submission_id as submission_id,
        source._version as submission_version,
        source._file as source_file,
        source._row_no as source_row_no,

        -- warning rules of the suite this row failed (it was loaded all the same)
        source._flags as quality_flags

    from source
    left join jalali_months
        on source._period = jalali_months.period

),

keyed as (

    select
        {{ surrogate_key(['renamed.period', 'renamed.person_key', 'renamed.support_type']) }}
            as beneficiary_support_id,
        renamed.*

    from renamed

)

select * from keyed
