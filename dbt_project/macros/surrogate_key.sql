{#- md5 of the given columns joined by '-', nulls written as '_null_'
    (the same construction as dbt_utils.generate_surrogate_key, which cannot be
    installed here). -#}
{% macro surrogate_key(columns) -%}
    md5(
    {%- for column in columns %}
        coalesce(cast({{ column }} as text), '_null_'){% if not loop.last %} || '-' ||{% endif %}
    {%- endfor %}
    )
{%- endmacro %}
