{#- The datasets that name persons, each with the ledger datasets its person records are built
    from (an insured person's province is their workplace's, from the workplaces delivery of
    the same period). The partitions of int_person_records, dim_person, dim_person_history and
    mart_linkage_rate: one per dataset and period. -#}
{% macro person_record_groups() -%}
    {{ return({
        'sso__insured_persons': ['sso__insured_persons', 'sso__workplaces'],
        'tvto__trainees': ['tvto__trainees'],
        'cspf__pensioners': ['cspf__pensioners'],
        'swo__beneficiaries': ['swo__beneficiaries'],
    }) }}
{%- endmacro %}


{#- The lineage of a TVTO period in fct_training: its trainees delivery (from the ledger) and
    what fct_insured_employment built for the Jalali months six months after its courses ended
    (the follow-up), so an SSO month built later rebuilds the TVTO periods it follows up. -#}
{% macro training_lineage() -%}
    select
        tvto.period as partition_key,
        'tvto__trainees:' || tvto.submission_id
        || coalesce(';' || string_agg(sso.partition_key || '=' || sso.lineage, ';' order by sso.partition_key), '')
            as lineage,
        array[tvto.submission_id]
        || coalesce(array_agg(sso_submission order by sso.partition_key) filter (where sso_submission is not null), '{}')
            as submission_ids
    from ({{ latest_accepted_lineage(['tvto__trainees']) }}) as tvto
    left join (
        select
            built.partition_key,
            built.lineage,
            built.submission_ids,
            months.period_start,
            months.period_end
        from ({{ upstream_lineage('fct_insured_employment') }}) as built
        inner join {{ ref('stg_anbar__jalali_months') }} as months
            on built.partition_key = months.period
    ) as sso
        on
            sso.period_start < cast(tvto.period_end + interval '6 months' as date)
            and sso.period_end > cast(tvto.period_start + interval '6 months' as date)
    left join lateral unnest(sso.submission_ids) as sso_submission on true
    group by tvto.period, tvto.submission_id
{%- endmacro %}


{#- The lineage of a dataset's period in mart_linkage_rate: what int_person_records built for it,
    and the newest submission of any other dataset's period that starts before this one ends (a
    person is linked when another dataset knew them by then; a delivery that could add such a
    person has a higher submission id than any before it). -#}
{% macro linkage_lineage() -%}
    with built as (
        select
            records.partition_key,
            records.lineage,
            records.submission_ids,
            split_part(records.partition_key, '/', 1) as dataset,
            bounds.period_start,
            bounds.period_end,
            (select max(id) from unnest(records.submission_ids) as id) as newest
        from ({{ upstream_lineage('int_person_records') }}) as records
        inner join {{ ref('stg_anbar__accepted_submissions') }} as bounds
            on bounds.submission_id = records.submission_ids[1]
    )
    select
        own.partition_key,
        own.lineage || ';others<=' || coalesce(max(other.newest)::text, '-') as lineage,
        own.submission_ids
    from built as own
    left join built as other
        on other.dataset <> own.dataset and other.period_start < own.period_end
    group by own.partition_key, own.lineage, own.submission_ids
{%- endmacro %}
