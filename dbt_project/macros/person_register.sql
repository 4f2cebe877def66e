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


{#- The lineage of a TVTO period in fct_training and mart_trainees: its trainees delivery and
    the SSO insured-persons deliveries of the Jalali months six months after its courses
    ended (the follow-up), so a late SSO month rebuilds the TVTO periods it follows up. -#}
{% macro training_lineage() -%}
    select
        tvto.period as partition_key,
        'tvto__trainees:' || tvto.submission_id
        || coalesce(',' || string_agg('sso__insured_persons:' || sso.submission_id, ',' order by sso.period), '')
            as lineage,
        array[tvto.submission_id]
        || coalesce(array_agg(sso.submission_id order by sso.period) filter (where sso.submission_id is not null), '{}')
            as submission_ids
    from ({{ latest_accepted_lineage(['tvto__trainees']) }}) as tvto
    left join ({{ latest_accepted_lineage(['sso__insured_persons']) }}) as sso
        on
            sso.period_start < cast(tvto.period_end + interval '6 months' as date)
            and sso.period_end > cast(tvto.period_start + interval '6 months' as date)
    group by tvto.period, tvto.submission_id
{%- endmacro %}


{#- The lineage of a dataset's period in mart_linkage_rate: its own deliveries and the newest
    accepted delivery of any other person dataset whose period starts before this one ends
    (a person is linked when another dataset knew them by then; a delivery that could add
    such a person has a higher submission id than any before it). -#}
{% macro linkage_lineage() -%}
    select
        own.partition_dataset || '/' || own.period as partition_key,
        string_agg(own.dataset || ':' || own.submission_id, ',' order by own.dataset)
        || ';others<=' || coalesce(max(other.newest)::text, '-') as lineage,
        array_agg(own.submission_id order by own.dataset) as submission_ids
    from ({{ latest_accepted_lineage(person_record_groups()) }}) as own
    left join lateral (
        select max(candidate.submission_id) as newest
        from ({{ latest_accepted_lineage(person_record_groups()) }}) as candidate
        where candidate.partition_dataset <> own.partition_dataset and candidate.period_start < own.period_end
    ) as other on true
    group by own.partition_dataset, own.period
{%- endmacro %}
