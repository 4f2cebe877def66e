{#- Keyed hash of a person identifier: HMAC-SHA256 with the warehouse's pseudonym key,
    computed by the database function anbar.pseudonymise (anbar.pseudonym installs it).
    The key lives in a table the models cannot read; it is never in dbt's SQL, its
    compiled files or the server log. The same key gives the same person_key in every
    source, so persons link across suppliers without their national ID. -#}
{% macro pseudonymise(column) -%}
    anbar.pseudonymise({{ column }})
{%- endmacro %}
