-- The workplace register: one row per SSO workshop, with its latest attributes and the
-- periods it was active in.
with

workplaces as (

    select * from {{ ref('stg_sso__workplaces') }}

),

ranked as (

    select
        workshop_code,
        legal_id,
        workshop_name,
        isic_section,
        province_code,
        registered_on,
        row_number() over (partition by workshop_code order by period_start desc) as recency_rank
    from workplaces

),

activity as (

    select
        workshop_code,
        min(period) as first_active_period,
        max(period) as last_active_period,
        count(*) as active_periods
    from workplaces
    group by workshop_code

)

select
    ranked.workshop_code,
    ranked.legal_id,
    ranked.workshop_name,
    ranked.isic_section,
    ranked.province_code,
    ranked.registered_on,
    activity.first_active_period,
    activity.last_active_period,
    activity.active_periods
from ranked
inner join activity
    on ranked.workshop_code = activity.workshop_code
where ranked.recency_rank = 1
