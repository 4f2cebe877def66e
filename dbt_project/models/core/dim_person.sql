-- The person register: one row per pseudonymised person seen in any accepted delivery, with
-- the current attributes (the latest record wins; SSO and CSPF, registers of insured and
-- pensioned persons, before SWO and TVTO) and which sources know them. Linked = known to two
-- or more datasets (the linkage the warehouse exists for).
--
-- Incremental: a run folds the records of the new dataset periods into the persons they name
-- (every column below is a fold: least, greatest, or, the more recent record), so a month
-- costs what its records cost. A newer version of a period already built cannot be folded
-- (its old records would have to be taken out): then the register is rebuilt from all records.
{% set partitions = build_partitions(none, lineage_sql=upstream_lineage('int_person_records')) %}
{% set fold = not partitions.full and not partitions.replaced %}
{{ config(
    materialized='incremental',
    unique_key='person_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_if_replaced(none, lineage_sql=upstream_lineage('int_person_records')) }}",
    post_hook="{{ record_build_state(none, lineage_sql=upstream_lineage('int_person_records')) }}",
) }}

with

records as (

    select
        *,
        case dataset
            when 'sso__insured_persons' then 0 when 'cspf__pensioners' then 1 when 'swo__beneficiaries' then 2 else 3
        end as source_rank
    from {{ ref('int_person_records') }}
    {%- if fold %}
        where {{ in_partitions("dataset || '/' || period", partitions) }}
    {%- endif %}

),

latest_record as (

    select distinct on (person_key)
        person_key,
        sex,
        birth_date,
        province_code,
        period_start as attributes_period_start,
        source_rank as attributes_source_rank
    from records
    order by person_key asc, period_start desc, source_rank asc

),

seen as (

    select
        person_key,
        min(period_start) as first_seen_on,
        max(period_start) as last_seen_on,
        min(period_start) filter (where dataset = 'sso__insured_persons') as sso_insured_since,
        min(period_start) filter (where dataset = 'tvto__trainees') as tvto_trainee_since,
        min(period_start) filter (where dataset = 'cspf__pensioners') as cspf_pensioner_since,
        min(period_start) filter (where dataset = 'swo__beneficiaries') as swo_beneficiary_since,
        count(distinct sex) > 1 or count(distinct birth_date) > 1 as has_conflicting_demographics,
        min(sex) as known_sex,
        min(birth_date) as known_birth_date
    from records
    group by person_key

),

new_state as (

    select
        seen.*,
        latest_record.sex,
        latest_record.birth_date,
        latest_record.province_code,
        latest_record.attributes_period_start,
        latest_record.attributes_source_rank
    from seen
    inner join latest_record
        on seen.person_key = latest_record.person_key

),

{%- if fold %}

    previous as (

        select * from {{ this }}
        where person_key in (select new_state.person_key from new_state)

    ),

    folded as (

        select
            new_state.person_key,
            new_state.sex as new_sex,
            new_state.birth_date as new_birth_date,
            new_state.province_code as new_province_code,
            new_state.attributes_period_start as new_attributes_period_start,
            new_state.attributes_source_rank as new_attributes_source_rank,
            previous.sex as previous_sex,
            previous.birth_date as previous_birth_date,
            previous.province_code as previous_province_code,
            previous.attributes_period_start as previous_attributes_period_start,
            previous.attributes_source_rank as previous_attributes_source_rank,
            case
                when
                    previous.person_key is null
                    or new_state.attributes_period_start > previous.attributes_period_start
                    or (
                        new_state.attributes_period_start = previous.attributes_period_start
                        and new_state.attributes_source_rank < previous.attributes_source_rank
                    )
                    then 'new'
                else 'previous'
            end as attributes_from,
            least(new_state.first_seen_on, previous.first_seen_on) as first_seen_on,
            greatest(new_state.last_seen_on, previous.last_seen_on) as last_seen_on,
            least(new_state.sso_insured_since, previous.sso_insured_since) as sso_insured_since,
            least(new_state.tvto_trainee_since, previous.tvto_trainee_since) as tvto_trainee_since,
            least(new_state.cspf_pensioner_since, previous.cspf_pensioner_since) as cspf_pensioner_since,
            least(new_state.swo_beneficiary_since, previous.swo_beneficiary_since) as swo_beneficiary_since,
            -- without an earlier conflict, the person's earlier values were all known_*
            new_state.has_conflicting_demographics
            or coalesce(previous.has_conflicting_demographics, false)
            or new_state.known_sex <> previous.known_sex
            or new_state.known_birth_date <> previous.known_birth_date as has_conflicting_demographics,
            least(new_state.known_sex, previous.known_sex) as known_sex,
            least(new_state.known_birth_date, previous.known_birth_date) as known_birth_date
        from new_state
        left join previous
            on new_state.person_key = previous.person_key

    ),

    register as (

        select
            person_key,
            first_seen_on,
            last_seen_on,
            sso_insured_since,
            tvto_trainee_since,
            cspf_pensioner_since,
            swo_beneficiary_since,
            known_sex,
            known_birth_date,
            case attributes_from when 'new' then new_sex else previous_sex end as sex,
            case attributes_from when 'new' then new_birth_date else previous_birth_date end as birth_date,
            case attributes_from when 'new' then new_province_code else previous_province_code end as province_code,
            case attributes_from when 'new' then new_attributes_period_start else previous_attributes_period_start end
                as attributes_period_start,
            case attributes_from when 'new' then new_attributes_source_rank else previous_attributes_source_rank end
                as attributes_source_rank,
            coalesce(has_conflicting_demographics, false) as has_conflicting_demographics
        from folded

    ),

{%- else %}

    register as (

        select
            person_key,
            sex,
            birth_date,
            province_code,
            attributes_period_start,
            attributes_source_rank,
            first_seen_on,
            last_seen_on,
            sso_insured_since,
            tvto_trainee_since,
            cspf_pensioner_since,
            swo_beneficiary_since,
            has_conflicting_demographics,
            known_sex,
            known_birth_date
        from new_state

    ),

{%- endif %}

final as (

    select
        person_key,
        sex,
        birth_date,
        province_code,
        first_seen_on,
        last_seen_on,
        sso_insured_since,
        tvto_trainee_since,
        cspf_pensioner_since,
        swo_beneficiary_since,
        has_conflicting_demographics,
        attributes_period_start,
        attributes_source_rank,
        known_sex,
        known_birth_date,
        sso_insured_since is not null as is_sso_insured,
        tvto_trainee_since is not null as is_tvto_trainee,
        cspf_pensioner_since is not null as is_cspf_pensioner,
        swo_beneficiary_since is not null as is_swo_beneficiary
    from register

),

counted as (

    select
        *,
        is_sso_insured::int + is_tvto_trainee::int + is_cspf_pensioner::int + is_swo_beneficiary::int
            as datasets_seen
    from final

)

select
    *,
    datasets_seen > 1 as is_linked
from counted
