{#- Keyed hash of a person identifier: hex sha256 of the secret pseudonym key
    concatenated with the ID. The same key gives the same person_key in every
    source, so persons link across suppliers without their national ID. -#}
{% macro pseudonymise(column) -%}
    encode(sha256(convert_to({{ pseudonym_key() }} || {{ column }}, 'UTF8')), 'hex')
{%- endmacro %}


{#- The key as a SQL string literal, from var('pseudonym_key') (which dbt_project.yml
    fills from env var ANBAR_PSEUDONYM_KEY). The prod target fails without it; other
    targets use a fixed development key so demos and tests run. -#}
{% macro pseudonym_key() -%}
    {%- set key = var('pseudonym_key', '') | string | trim -%}
    {%- if not key -%}
        {%- if target.name == 'prod' and execute -%}
            {{ exceptions.raise_compiler_error(
                "ANBAR_PSEUDONYM_KEY is not set: the prod target will not pseudonymise "
                ~ "person IDs with the development key. Set the environment variable "
                ~ "ANBAR_PSEUDONYM_KEY (or --vars '{pseudonym_key: ...}') and rerun."
            ) }}
        {%- endif -%}
        {%- set key = 'anbar-development-pseudonym-key' -%}
    {%- endif -%}
    '{{ key | replace("'", "''") }}'
{%- endmacro %}
