-- A quarterly dataset (a committee exception): its period is a Jalali quarter, 1405-Q2.
with

source as (

    {{ latest_accepted('swo', 'disability_assessments') }}

),

jalali_periods as (

    {{ jalali_periods() }}

),

renamed as (

    select
        -- period (a Jalali quarter)
        source._period as period,
        jalali_periods.period_start,
        jalali_periods.period_end,

        -- person
        {{ pseudonymise('source.national_id') }} as person_key,

        -- attributes
        source.sex,
        source.birth_date,
        source.disability_type,
        source.severity as disability_severity,
        source.province as province_code,
        source.assessed_on,

        -- lineage
        source._submission_id as submission_id,
        source._version as submission_version,
        source._file as source_file,
        source._row_no as source_row_no,

        -- warning rules of the suite this row failed (it was loaded all the same)
        source._flags as quality_flags

    from source
    left join jalali_periods
        on source._period = jalali_periods.period

),

keyed as (

    select
        {{ surrogate_key(['renamed.period', 'renamed.person_key']) }} as disability_assessment_id,
        renamed.*

    from renamed

)

select * from keyed
