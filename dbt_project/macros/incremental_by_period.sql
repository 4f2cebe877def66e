{#- The filter of a fact rebuilt period by period: keep the periods of `relation` whose
    lineage (the submission ids in `lineage_columns`) differs from what the fact holds, i.e.
    periods never built and periods with a newer accepted version. Used with
    incremental_strategy='delete+insert' and unique_key='period'. -#}
{% macro changed_periods(relation, lineage_columns) -%}
    period in (
        select candidate.period
        from {{ relation }} as candidate
        left join (
            select distinct
                built.period,
                {%- for column in lineage_columns %}
                built.{{ column }}{% if not loop.last %},{% endif %}
                {%- endfor %}
            from {{ this }} as built
        ) as built_periods
            on
                candidate.period = built_periods.period
                {%- for column in lineage_columns %}
                and candidate.{{ column }} is not distinct from built_periods.{{ column }}
                {%- endfor %}
        where built_periods.period is null
    )
{%- endmacro %}
