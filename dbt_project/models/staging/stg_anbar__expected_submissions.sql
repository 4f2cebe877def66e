-- The expected-submission calendar from the ledger (anbar.expected_submissions, written from the
-- registry by anbar.expected.sync): one row per organisation, dataset and period that is due. For
-- models after staging, which may not read sources.
with

source as (

    select * from {{ source('anbar', 'expected_submissions') }}

),

renamed as (

    select
        {{ surrogate_key(['org', 'dataset', 'period']) }} as expected_submission_id,
        org,
        dataset,
        period,
        period_start,
        period_end,
        due_date,
        grace_until,
        extension_decision

    from source

)

select * from renamed
