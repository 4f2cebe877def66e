-- The monthly aggregate accounts for every insured job and rial of the fact, period by period.
with

staging_totals as (

    select
        period,
        count(*) as insured_jobs,
        sum(insured_wage_rials) as total_insured_wage_rials
    from {{ ref('fct_insured_employment') }}
    group by period

),

mart_totals as (

    select
        period,
        sum(insured_jobs) as insured_jobs,
        sum(total_insured_wage_rials) as total_insured_wage_rials
    from {{ ref('fct_insured_employment_monthly') }}
    group by period

)

select
    staging_totals.insured_jobs as staging_jobs,
    mart_totals.insured_jobs as mart_jobs,
    staging_totals.total_insured_wage_rials as staging_wage,
    mart_totals.total_insured_wage_rials as mart_wage,
    coalesce(staging_totals.period, mart_totals.period) as period
from staging_totals
full outer join mart_totals
    on staging_totals.period = mart_totals.period
where
    staging_totals.insured_jobs is distinct from mart_totals.insured_jobs
    or staging_totals.total_insured_wage_rials is distinct from mart_totals.total_insured_wage_rials
