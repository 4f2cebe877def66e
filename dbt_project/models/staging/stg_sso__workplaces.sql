with

source as (

    {{ latest_accepted('sso', 'workplaces') }}

),

jalali_months as (

    {{ jalali_months() }}

),

renamed as (

    select
        {{ surrogate_key(['source._period', 'source.workshop_code']) }} as workplace_period_id,

        -- period
        source._period as period,
        jalali_months.period_start,
        jalali_months.period_end,

        -- workplace
        source.workshop_code,
        source.legal_id,
        source.workshop_name,
        source.isic_section,
        source.province as province_code,
        source.registered_on,

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

)

select * from renamed
