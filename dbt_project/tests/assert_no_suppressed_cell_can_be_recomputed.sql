-- Complementary suppression holds in every mart: no group of cells of one period that differ
-- in one dimension only has exactly one suppressed cell (its value would follow from the
-- group's total). Periods are never summed over: no table totals over months.
-- depends_on: {{ ref('mart_insured_employment') }}
-- depends_on: {{ ref('mart_new_pensioners') }}
-- depends_on: {{ ref('mart_trainees') }}
-- depends_on: {{ ref('mart_linkage_rate') }}
-- depends_on: {{ ref('mart_welfare_beneficiaries') }}
{% set checks = ["select null as mart, null as dimension, 0 as groups_at_risk where false"] %}
{% for mart in published_marts() %}
    {% for dim in mart.dims %}
        {% set others = mart.by + (mart.dims | reject('equalto', dim) | list) %}
        {% do checks.append(
            "select '" ~ mart.model ~ "' as mart, '" ~ dim ~ "' as dimension, count(*) as groups_at_risk from ("
            ~ " select " ~ others | join(', ') ~ " from " ~ ref(mart.model)
            ~ " where " ~ dim ~ " <> '_T' and coalesce(" ~ mart['count'] ~ ", 1) > 0"
            ~ " group by " ~ others | join(', ')
            ~ " having count(*) filter (where is_suppressed) = 1 and count(*) > 1"
            ~ ") as lonely having count(*) > 0"
        ) %}
    {% endfor %}
{% endfor %}
{{ checks | join('\nunion all\n') }}
