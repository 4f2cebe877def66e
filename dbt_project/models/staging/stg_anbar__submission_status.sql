-- The status of every expected submission (the ledger's view anbar.submission_status, whose
-- definitions are in plugins/anbar/ddl.py), as of the day of the run in the organisation's time zone.
with

source as (

    select * from {{ source('anbar', 'submission_status') }}

),

renamed as (

    select
        {{ surrogate_key(['org', 'dataset', 'period']) }} as expected_submission_id,
        status,
        status_on,
        first_received_at,
        accepted_at,
        on_time,
        days_late,
        versions,
        resubmissions,
        accepted_first_time,
        latest_submission_id,
        in_use_submission_id,
        latest_submission_id is not null as is_received

    from source

)

select * from renamed
