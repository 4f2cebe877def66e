{#- post-hook of every model: re-grant the columns the committee's approved access decisions give
    on the model just built (anbar.access_grants; see anbar.access). dbt recreates a table model
    at every run, and the new table has none of the old one's grants; the hook runs inside the
    model's transaction, so the rebuilt table is never visible without them. A warehouse where
    `anbar access apply` never ran has no such function: nothing to re-grant. -#}
{% macro reapply_access_grants() -%}
do $grants$
begin
    if to_regprocedure('anbar.reapply_access_grants(text, text)') is not null then
        perform anbar.reapply_access_grants('{{ this.schema }}', '{{ this.identifier }}');
    end if;
end
$grants$
{%- endmacro %}
