{#- Models rebuilt partition by partition (a period, or a dataset and period).

    A partition's lineage is the set of accepted submissions it is built from, read from
    the ledger (stg_anbar__accepted_submissions), never from the warehouse's own rows, so
    finding what changed costs the same whatever the length of the history. A run builds
    the partitions whose lineage differs from the one recorded in the build state
    (<target schema>.dbt_build_state, one row per model and partition) and records the new
    lineage in the same transaction (post-hook record_build_state).

    Both look at the ledger as of the start of the dbt run: a delivery accepted while the
    run is going is left to the next run (its Asset event triggers one), and the state never
    claims more than what was built.

    In a model (materialized incremental, incremental_strategy delete+insert, unique_key the
    partition columns):

        {% set partitions = build_partitions(['sso__insured_persons', 'sso__workplaces']) %}
        ... where {{ in_partitions('period', partitions) }}

    `partitions` is a list of {'key', 'lineage', 'submission_ids'}; on a full build it holds
    every partition, on an incremental run only the changed ones (often none). -#}

{% macro build_state_table() -%}
    {#- the target schema (dbt's; sqlfluff's offline templater has no target) -#}
    {{ target.schema if target is defined else 'analytics' }}.dbt_build_state
{%- endmacro %}


{#- on-run-start: the build state table. -#}
{% macro create_build_state() -%}
    create schema if not exists {{ target.schema }};
    create table if not exists {{ build_state_table() }} (
        model text not null,
        partition_key text not null,
        lineage text not null,
        built_at timestamptz not null default now(),
        primary key (model, partition_key)
    )
{%- endmacro %}


{#- The latest accepted submission of each period of the ledger datasets in `groups`, as of
    the start of this run. `groups` maps the dataset a partition is named after to the ledger
    datasets it is built from ({'sso__insured_persons': ['sso__insured_persons',
    'sso__workplaces']}); a plain list is one group. -#}
{% macro latest_accepted_lineage(groups) -%}
    {%- set groups = groups if groups is mapping else {'_': groups} -%}
    select distinct on (accepted.dataset, accepted.period)
        case
            {%- for name, members in groups.items() %}
            when accepted.dataset in ({% for m in members %}'{{ m }}'{% if not loop.last %}, {% endif %}{% endfor %})
                then '{{ name }}'
            {%- endfor %}
        end as partition_dataset,
        accepted.dataset,
        accepted.period,
        accepted.period_start,
        accepted.period_end,
        accepted.submission_id
    from {{ ref('stg_anbar__accepted_submissions') }} as accepted
    where
        accepted.dataset in (
            {%- for members in groups.values() %}{% for m in members %}'{{ m }}'
            {%- if not loop.last %}, {% endif %}{% endfor %}{% if not loop.last %}, {% endif %}{% endfor -%}
        )
        and accepted.accepted_at <= '{{ run_started_at }}'::timestamptz
    order by accepted.dataset, accepted.period, accepted.version desc, accepted.submission_id desc
{%- endmacro %}


{#- One row per partition: key, lineage (text) and the submission ids it is built from. -#}
{% macro ledger_lineage(groups, by_dataset=false) -%}
    select
        {% if by_dataset %}latest.partition_dataset || '/' || {% endif %}latest.period as partition_key,
        string_agg(latest.dataset || ':' || latest.submission_id, ',' order by latest.dataset) as lineage,
        array_agg(latest.submission_id order by latest.dataset) as submission_ids
    from ({{ latest_accepted_lineage(groups) }}) as latest
    group by 1
{%- endmacro %}


{#- The lineage of a model that reads another incremental model: what that model last built
    (its build state), not the ledger. Each Cosmos task is a dbt process of its own with its own
    start: a model reading the ledger could see a delivery its upstream model has not built yet,
    record it as built, and never build it. -#}
{% macro upstream_lineage(model_name) -%}
    {{ built_lineage("state.model = '" ~ model_name ~ "'") }}
{%- endmacro %}


{#- The build state rows matching `condition` (partition, lineage), with the submission ids
    their lineage names (its `<dataset>:<id>` tokens). -#}
{% macro built_lineage(condition) -%}
    select
        state.partition_key,
        state.lineage,
        array(
            select (regexp_match(token, ':(\d+)$'))[1]::bigint
            from unnest(string_to_array(replace(state.lineage, ';', ','), ',')) as token
            where token ~ ':\d+$'
        ) as submission_ids
    from {{ build_state_table() }} as state
    where {{ condition }}
{%- endmacro %}


{#- The partitions to build: {'full': bool, 'items': [{'key', 'lineage', 'submission_ids'}],
    'replaced': bool}. A full build (the first, --full-refresh, or a model without build
    state) reads everything: the filters below are then `true`. Otherwise `items` are the
    partitions whose lineage changed (often none) and `replaced` tells whether one of them
    was built before with another lineage (a newer version of a period), as opposed to new
    partitions only. The same answer in the model and in its post-hooks, where the model's
    table already exists. -#}
{% macro build_partitions(groups, by_dataset=false, lineage_sql=none) -%}
    {%- set lineage = lineage_sql or ledger_lineage(groups, by_dataset) -%}
    {%- if not execute -%}
        {{ return({'full': true, 'items': [], 'replaced': false}) }}
    {%- endif -%}
    {%- set has_state = run_query(
        "select exists (select from " ~ build_state_table() ~ " where model = '" ~ this.identifier ~ "')"
    ).rows[0][0] -%}
    {%- set full = not has_state or should_full_refresh() or not is_incremental() -%}
    {%- if full -%}
        {{ return({'full': true, 'items': [], 'replaced': false}) }}
    {%- endif -%}
    {%- set query -%}
        select
            current_lineage.partition_key,
            current_lineage.lineage,
            array_to_string(current_lineage.submission_ids, ',') as submission_ids,
            state.lineage is not null as replaced
        from ({{ lineage }}) as current_lineage
        left join {{ build_state_table() }} as state
            on
                state.model = '{{ this.identifier }}'
                and state.partition_key = current_lineage.partition_key
        where state.lineage is distinct from current_lineage.lineage
        order by 1
    {%- endset -%}
    {%- set items = [] -%}
    {%- set replaced = [] -%}
    {%- for row in run_query(query).rows -%}
        {%- do items.append({'key': row[0], 'lineage': row[1], 'submission_ids': row[2].split(',') if row[2] else []}) -%}
        {%- if row[3] %}{% do replaced.append(row[0]) %}{% endif -%}
    {%- endfor -%}
    {{ return({'full': false, 'items': items, 'replaced': replaced | length > 0}) }}
{%- endmacro %}


{#- `expression` is one of the partitions' keys (`true` on a full build, `false` when there is
    nothing to build). -#}
{% macro in_partitions(expression, partitions) -%}
    {%- if partitions.full -%}
        true
    {%- elif partitions['items'] -%}
        {{ expression }} in ({% for p in partitions['items'] %}'{{ p.key }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}


{#- `column` (a submission id) is one of the partitions' submissions: lets PostgreSQL prune the
    clean partitions (one per submission) at plan time instead of scanning the history. -#}
{% macro in_submissions(column, partitions) -%}
    {%- set ids = [] -%}
    {%- for p in partitions['items'] -%}{%- do ids.extend(p.submission_ids) -%}{%- endfor -%}
    {%- if partitions.full -%}
        true
    {%- elif ids -%}
        {{ column }} in ({{ ids | unique | join(', ') }})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}


{#- post-hook: record what this run built, with the same cutoff as the model's build_partitions
    call. A full build replaces the model's state; an incremental one updates the partitions
    whose lineage changed (built_at = now) and leaves the others as they were, so the
    partitions of a model's last build are the ones with its latest built_at (what the data
    tests look at, see get_where_subquery). -#}
{% macro record_build_state(groups, by_dataset=false, lineage_sql=none) -%}
    {%- set full = build_partitions(groups, by_dataset, lineage_sql).full -%}
    {%- set lineage = lineage_sql or ledger_lineage(groups, by_dataset) -%}
    {%- if full %}
    delete from {{ build_state_table() }} where model = '{{ this.identifier }}';
    {%- else %}
    delete from {{ build_state_table() }} as state
    where
        state.model = '{{ this.identifier }}'
        and state.partition_key not in (select current_lineage.partition_key from ({{ lineage }}) as current_lineage);
    {%- endif %}
    insert into {{ build_state_table() }} as state (model, partition_key, lineage)
    select '{{ this.identifier }}', current_lineage.partition_key, current_lineage.lineage
    from ({{ lineage }}) as current_lineage
    on conflict (model, partition_key) do update
        set lineage = excluded.lineage, built_at = now()
        where state.lineage is distinct from excluded.lineage
{%- endmacro %}


{#- Data tests look at what this run built, not at the whole history (a `unique` over every
    month of a staging view would pseudonymise them all): dbt's own hook for a test's `where`,
    overridden for
    - incremental models with `meta.partition_key` (an expression over their columns): the
      partitions of the model's last build;
    - staging views with a submission_id column: the deliveries no model has built yet.
    A first build tests everything; so does `--full-refresh`. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set scope = test_scope(relation) -%}
    {%- if where or scope -%}
        {%- set filtered -%}
            (select * from {{ relation }} where ({{ where or 'true' }}) and ({{ scope or 'true' }})) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{% macro test_scope(relation) -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        {{ return('') }}
    {%- endif -%}
    {%- set node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('alias', 'equalto', relation.identifier)
        | selectattr('schema', 'equalto', relation.schema)
        | first
        | default(none) -%}
    {%- if node is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set partition_key = node.config.meta.get('partition_key') -%}
    {%- if partition_key -%}
        {%- set keys = run_query(
            "select partition_key from " ~ build_state_table() ~ " where model = '" ~ node.alias ~ "'"
            ~ " and built_at = (select max(built_at) from " ~ build_state_table()
            ~ " where model = '" ~ node.alias ~ "') order by 1"
        ).columns[0].values() -%}
        {{ return(partition_key ~ " in ('" ~ (keys | join("', '")) ~ "')" if keys else 'false') }}
    {%- elif node.config.materialized == 'view' and 'submission_id' in node.columns -%}
        {%- set query -%}
            select submission_id from anbar.submissions
            where
                status = 'accepted'
                and org || '__' || dataset = '{{ node.name | replace('stg_', '', 1) }}'
                and submission_id not in (
                    select unnest(built.submission_ids) from ({{ built_lineage('true') }}) as built
                )
            order by 1
        {%- endset -%}
        {%- set ids = run_query(query).columns[0].values() -%}
        {{ return('submission_id in (' ~ (ids | join(', ')) ~ ')' if ids else 'false') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}



{#- pre-hook of the registers (dim_person, dim_person_history, dim_workplace): when a period
    already built comes in a newer version the register is recomputed from all records, and
    rows of persons (workplaces) the new version no longer names must go too. -#}
{% macro clear_if_replaced(groups, by_dataset=false, lineage_sql=none) -%}
    {%- if build_partitions(groups, by_dataset, lineage_sql).replaced -%}
        delete from {{ this }}
    {%- else -%}
        select 'no period replaced: the register is folded, not recomputed' as incremental_mode
    {%- endif -%}
{%- endmacro %}
