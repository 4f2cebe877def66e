-- No published cell of any mart counts fewer persons than the disclosure threshold, and a
-- suppressed cell shows no count.
-- depends_on: {{ ref('mart_insured_employment') }}
-- depends_on: {{ ref('mart_new_pensioners') }}
-- depends_on: {{ ref('mart_trainees') }}
-- depends_on: {{ ref('mart_linkage_rate') }}
-- depends_on: {{ ref('mart_welfare_beneficiaries') }}
{% for mart in published_marts() %}
    select
        '{{ mart.model }}' as mart,
        cell_id_text,
        cell_count
    from (
        select
            md5(row_to_json(m)::text) as cell_id_text,
            m.{{ mart['count'] }} as cell_count,
            m.is_suppressed
        from {{ ref(mart.model) }} as m
    ) as cells
    where
        (not is_suppressed and cell_count > 0 and cell_count < {{ var('small_cell_threshold') }})
        or (is_suppressed and cell_count is not null)
    {% if not loop.last %}union all{% endif %}
{% endfor %}
