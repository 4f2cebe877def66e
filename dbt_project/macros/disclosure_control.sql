{#- Disclosure control of the published marts (statistical practice: small-cell suppression).

    A mart is one row per cell: "by" columns that are never summed over (the period: no
    table totals over months), dimension columns (the code '_T' marks a total over that
    dimension), a count of persons, other measures, and is_suppressed. After the mart is
    built, its post-hook calls anbar.apply_disclosure_control on the rows of the periods it
    just built (`scope`; the other periods were protected when they were built and do not
    change), which, within each value of the "by" columns,

    1. suppresses every cell counting fewer persons than the threshold (primary suppression);
    2. repeats, until nothing changes: for each dimension, in each group of cells that differ
       only in that dimension, if exactly one cell is suppressed, also suppresses the smallest
       other cell (complementary suppression), so no hidden cell can be recomputed from a
       total published here or in another table;
    3. blanks the count and every measure of the suppressed cells.

    The function is created by the run's on-run-start hook (disclosure_control_function). -#}

{% macro disclosure_control_function() -%}
drop function if exists anbar.apply_disclosure_control(regclass, text[], text, text[], integer);
create or replace function anbar.apply_disclosure_control(
    target regclass, by_columns text[], dims text[], count_column text, measures text[], threshold integer,
    scope text default 'true'
) returns integer
language plpgsql as $fn$
declare
    dim text;
    others text;
    order_dims text;
    join_on text;
    changed integer;
    round_changes integer;
    total integer := 0;
    rounds integer := 0;
begin
    execute format(
        'update %s set is_suppressed = (%I is not null and %I > 0 and %I < %s) where %s',
        target, count_column, count_column, count_column, threshold, scope
    );
    select string_agg(format('%I', d), ', ') into order_dims from unnest(by_columns || dims) as d;
    loop
        round_changes := 0;
        foreach dim in array dims loop
            select coalesce(string_agg(format('%I', d), ', '), 'true') into others
            from unnest(by_columns || dims) as d where d <> dim;
            execute format(
                $q$
                with members as (
                    select
                        ctid as row_id,
                        is_suppressed,
                        count(*) filter (where is_suppressed) over (partition by %2$s) as suppressed_in_group,
                        row_number() over (
                            partition by %2$s
                            order by is_suppressed, %3$I, %4$s
                        ) as smallest_first
                    from %1$s
                    where %5$I <> '_T' and %3$I > 0 and (%6$s)
                )
                update %1$s as t set is_suppressed = true
                from members
                where
                    t.ctid = members.row_id
                    and members.suppressed_in_group = 1
                    and not members.is_suppressed
                    and members.smallest_first = 1
                $q$,
                target, others, count_column, order_dims, dim, scope
            );
            get diagnostics changed = row_count;
            round_changes := round_changes + changed;
            -- A group whose only cell is suppressed: its total (dim = '_T') would show it.
            select coalesce(string_agg(format('t.%1$I is not distinct from lonely.%1$I', d), ' and '), 'true')
                into join_on
            from unnest(by_columns || dims) as d where d <> dim;
            execute format(
                $q$
                with lonely as (
                    select %2$s
                    from %1$s
                    where %3$I <> '_T' and %4$I > 0 and (%6$s)
                    group by %2$s
                    having count(*) = 1 and bool_and(is_suppressed)
                )
                update %1$s as t set is_suppressed = true
                from lonely
                where t.%3$I = '_T' and not t.is_suppressed and %5$s
                $q$,
                target, others, dim, count_column, join_on, scope
            );
            get diagnostics changed = row_count;
            round_changes := round_changes + changed;
        end loop;
        total := total + round_changes;
        rounds := rounds + 1;
        exit when round_changes = 0 or rounds > 50;
    end loop;
    execute format(
        'update %s set %s where is_suppressed and (%s)',
        target,
        (select string_agg(format('%I = null', m), ', ') from unnest(array_prepend(count_column, measures)) as m),
        scope
    );
    return total;
end
$fn$
{%- endmacro %}


{#- The post-hook of a published mart (see published_marts() for its columns), on the periods
    this run built. -#}
{% macro disclosure_control(model_name, datasets, by_dataset=false, lineage_sql=none) -%}
    {%- set mart = published_marts() | selectattr('model', 'equalto', model_name) | first -%}
    {%- set partitions = build_partitions(datasets, by_dataset, lineage_sql) -%}
    {%- set key = "dataset || '/' || period" if by_dataset else 'period' -%}
    select anbar.apply_disclosure_control(
        '{{ this }}'::regclass,
        {{ text_array(mart.by) }},
        {{ text_array(mart.dims) }},
        '{{ mart.count }}',
        {{ text_array(mart.measures) }},
        {{ var('small_cell_threshold') }},
        $scope${{ in_partitions(key, partitions) }}$scope$
    )
{%- endmacro %}


{% macro text_array(values) -%}
    array[{% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[]
{%- endmacro %}
