{#- Models build into the schema their folder names (staging, intermediate, marts)
    as-is, not dbt's default <target_schema>_<custom_schema>. Anything without a
    custom schema goes to the target schema (analytics). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
