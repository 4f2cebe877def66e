-- The workplace register: one row per SSO workshop, with its latest attributes and the
-- periods it was active in. Incremental like dim_person: the new periods' workplaces are
-- folded into the register (a newer version of a period already built rebuilds it).
{% set partitions = build_partitions(['sso__workplaces']) %}
{% set fold = not partitions.full and not partitions.replaced %}
{{ config(
    materialized='incremental',
    unique_key='workshop_code',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_if_replaced(['sso__workplaces']) }}",
    post_hook="{{ record_build_state(['sso__workplaces']) }}",
) }}

with

workplaces as (

    select * from {{ ref('stg_sso__workplaces') }}
    where {{ in_submissions('submission_id', partitions) }}

),

latest as (

    select distinct on (workshop_code)
        workshop_code,
        legal_id,
        workshop_name,
        isic_section,
        province_code,
        registered_on,
        period_start as attributes_period_start
    from workplaces
    order by workshop_code asc, period_start desc

),

activity as (

    select
        workshop_code,
        min(period) as first_active_period,
        max(period) as last_active_period,
        count(*) as active_periods
    from workplaces
    group by workshop_code

),

new_state as (

    select
        latest.*,
        activity.first_active_period,
        activity.last_active_period,
        activity.active_periods
    from latest
    inner join activity
        on latest.workshop_code = activity.workshop_code

),

{%- if fold %}

    previous as (

        select * from {{ this }}
        where workshop_code in (select new_state.workshop_code from new_state)

    ),

    register as (

        select
            new_state.*,
            previous.legal_id as previous_legal_id,
            previous.workshop_name as previous_workshop_name,
            previous.isic_section as previous_isic_section,
            previous.province_code as previous_province_code,
            previous.registered_on as previous_registered_on,
            previous.attributes_period_start as previous_attributes_period_start,
            previous.first_active_period as previous_first_active_period,
            previous.last_active_period as previous_last_active_period,
            previous.active_periods as previous_active_periods,
            previous.workshop_code is null
            or new_state.attributes_period_start > previous.attributes_period_start as attributes_are_new
        from new_state
        left join previous
            on new_state.workshop_code = previous.workshop_code

    ),

    final as (

        select
            workshop_code,
        {%- for column in ['legal_id', 'workshop_name', 'isic_section', 'province_code', 'registered_on',
                           'attributes_period_start'] %}
                case when attributes_are_new then {{ column }} else previous_{{ column }} end as {{ column }},
            {%- endfor %}
            least(first_active_period, previous_first_active_period) as first_active_period,
            greatest(last_active_period, previous_last_active_period) as last_active_period,
            active_periods + coalesce(previous_active_periods, 0) as active_periods
        from register

    )

{%- else %}

    final as (

        select
            workshop_code,
            legal_id,
            workshop_name,
            isic_section,
            province_code,
            registered_on,
            attributes_period_start,
            first_active_period,
            last_active_period,
            active_periods
        from new_state

    )

{%- endif %}

select * from final
