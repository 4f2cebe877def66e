{#- Every non-null value of the column is a code of the registry code list
    `code_list` (ref.code_list_values through stg_ref__code_list_values). Warns by
    default: conformance is enforced at ingest, this catches a registry drift. -#}
{% test in_code_list(model, column_name, code_list) %}
{{ config(severity = 'warn') }}

select tested.{{ column_name }} as unknown_code
from {{ model }} as tested
where
    tested.{{ column_name }} is not null
    and not exists (
        select 1
        from {{ ref('stg_ref__code_list_values') }} as code_list_values
        where
            code_list_values.code_list = '{{ code_list }}'
            and code_list_values.code = tested.{{ column_name }}
    )

{% endtest %}
