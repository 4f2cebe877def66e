-- The person register with history (type 2): one row per person and stretch of periods over
-- which the sources agree on sex, birth date and province. valid_to is the start of the next
-- version (null for the current one); last_period_start the last period the version was seen.
--
-- Incremental: the persons named by the new dataset periods are rewritten. A person whose new
-- records all come after the last period seen continues from their current version (the
-- earlier versions stay as they are); anyone else (a late period of another source) is
-- recomputed from all their records. A newer version of a period already built rebuilds it all.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('int_person_records')) %}
{% set fold = not partitions.full and not partitions.replaced %}
{{ config(
    materialized='incremental',
    unique_key='person_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['person_key']}],
    pre_hook="{{ clear_if_replaced(none, lineage_sql=upstream_lineage('int_person_records')) }}",
    post_hook="{{ record_build_state(none, lineage_sql=upstream_lineage('int_person_records')) }}",
) }}

with

all_records as (

    select
        person_key,
        period_start,
        sex,
        birth_date,
        province_code,
        dataset || '/' || period as partition_key
    from {{ ref('int_person_records') }}

),

{%- if fold %}

    new_records as (

        select
            person_key,
            period_start,
            sex,
            birth_date,
            province_code
        from all_records
        where {{ in_partitions('partition_key', partitions) }}

    ),

    current_versions as (

        select * from {{ this }}
        where is_current and person_key in (select new_records.person_key from new_records)

    ),

    continued as (

    -- persons new to the register, and persons whose new records all follow what was seen
        select new_records.person_key
        from new_records
        left join current_versions
            on new_records.person_key = current_versions.person_key
        group by new_records.person_key
        having coalesce(min(new_records.period_start) > max(current_versions.last_period_start), true)

    ),

    records as (

    -- the current version as its first and last periods, then the new records
        select
            current_versions.person_key,
            seen.period_start,
            current_versions.sex,
            current_versions.birth_date,
            current_versions.province_code
        from current_versions
        cross join
            lateral
            unnest(array[current_versions.valid_from, current_versions.last_period_start]) as seen (period_start)
        where current_versions.person_key in (select continued.person_key from continued)
        union all
        select
            person_key,
            period_start,
            sex,
            birth_date,
            province_code
        from new_records
        where person_key in (select continued.person_key from continued)
        union all
        -- a late period: everything known about the person
        select
            person_key,
            period_start,
            sex,
            birth_date,
            province_code
        from all_records
        where
            person_key in (select new_records.person_key from new_records)
            and person_key not in (select continued.person_key from continued)

    ),

    -- (used below, when folding: the versions of continued persons that stay as they are)
    kept_versions as (  -- noqa: ST03

        select
            person_key,
            valid_from,
            valid_to,
            last_period_start,
            sex,
            birth_date,
            province_code
        from {{ this }}
        where not is_current and person_key in (select continued.person_key from continued)

    ),

{%- else %}

    records as (

        select
            person_key,
            period_start,
            sex,
            birth_date,
            province_code
        from all_records

    ),

{%- endif %}

per_period as (

    -- one state per person and period start (the sources of that month, SSO first)
    select distinct on (person_key, period_start)
        person_key,
        period_start,
        sex,
        birth_date,
        province_code
    from records
    order by person_key asc, period_start asc, sex asc, birth_date asc, province_code asc

),

states as (

    select
        person_key,
        period_start,
        sex,
        birth_date,
        province_code,
        concat_ws(
            '|', coalesce(sex, '?'), coalesce(birth_date::text, '?'), coalesce(province_code, '?')
        ) as state
    from per_period

),

changes as (

    select
        *,
        coalesce(
            state <> lag(state) over (partition by person_key order by period_start), true
        )::int as is_change
    from states

),

numbered as (

    select
        *,
        sum(is_change) over (partition by person_key order by period_start) as version_no
    from changes

),

versions as (

    select
        person_key,
        min(period_start) as valid_from,
        max(period_start) as last_period_start,
        min(sex) as sex,
        min(birth_date) as birth_date,
        min(province_code) as province_code
    from numbered
    group by person_key, version_no

),

rebuilt as (

    select
        person_key,
        valid_from,
        last_period_start,
        sex,
        birth_date,
        province_code,
        lead(valid_from) over (partition by person_key order by valid_from) as valid_to
    from versions

),

all_versions as (

    select * from rebuilt
    {%- if fold %}
        union all
        select
            person_key,
            valid_from,
            last_period_start,
            sex,
            birth_date,
            province_code,
            valid_to
        from kept_versions
    {%- endif %}

)

select
    {{ surrogate_key(['person_key', 'valid_from']) }} as person_version_id,
    person_key,
    valid_from,
    valid_to,
    last_period_start,
    sex,
    birth_date,
    province_code,
    valid_to is null as is_current
from all_versions
