-- Quality score of a delivery per principle: the share of the principle's rules it passed, in
-- percent, from the scorecard of the latest version of each period (anbar.quality_scorecard_latest);
-- null for a principle with no rule evaluated. One row per delivery scored.
with

source as (

    select * from {{ source('anbar', 'quality_scorecard_latest') }}

),

scores as (

    select
        submission_id,
        principle,
        case
            when rules_evaluated > 0
                then round(100.0 * (rules_evaluated - rules_failed) / rules_evaluated, 1)
        end as score

    from source

),

pivoted as (

    select
        submission_id as scored_submission_id,
        max(score) filter (where principle = 'conversion') as score_conversion,
        max(score) filter (where principle = 'system') as score_system,
        max(score) filter (where principle = 'consistency') as score_consistency,
        max(score) filter (where principle = 'quality') as score_quality

    from scores
    group by submission_id

)

select * from pivoted
