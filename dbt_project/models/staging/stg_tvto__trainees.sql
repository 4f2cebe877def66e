with

source as (

    {{ latest_accepted('tvto', 'trainees') }}

),

renamed as (

    select
        -- period (TVTO reports on Gregorian months)
        source._period as period,
        {{ gregorian_period_start('source._period') }} as period_start,
        {{ gregorian_period_end('source._period') }} as period_end,

        -- person and course
        {{ pseudonymise('source.national_id') }} as person_key,
        source.course_code,
        source.isco_code,

        -- attributes
        source.sex,
        source.birth_date,
        source.province as province_code,
        source.course_start,
        source.course_end,
        source.hours as training_hours,
        source.result as course_result,

        -- lineage
        source._submission_id as submission_id,
        source._version as submission_version,
        source._file as source_file,
        source._row_no as source_row_no,

        -- warning rules of the suite this row failed (it was loaded all the same)
        source._flags as quality_flags

    from source

),

keyed as (

    select
        {{ surrogate_key(['renamed.period', 'renamed.person_key', 'renamed.course_code']) }} as trainee_course_id,
        renamed.*

    from renamed

)

select * from keyed
