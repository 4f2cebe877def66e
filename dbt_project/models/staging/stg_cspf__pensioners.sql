with

source as (

    {{ latest_accepted('cspf', 'pensioners') }}

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
        source.pension_type,
        source.retirement_date,
        source.province as province_code,

        -- measures
        source.pension_amount as pension_amount_rials,

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
        {{ surrogate_key(['renamed.period', 'renamed.person_key']) }} as pensioner_period_id,
        renamed.*

    from renamed

)

select * from keyed
