-- Every code a mart publishes is a code of its registry code list, or the marts' own _T
-- (total) or _U (unknown).
-- depends_on: {{ ref('mart_insured_employment') }}
-- depends_on: {{ ref('mart_new_pensioners') }}
-- depends_on: {{ ref('mart_welfare_beneficiaries') }}
-- depends_on: {{ ref('mart_trainees') }}
-- depends_on: {{ ref('mart_linkage_rate') }}
{% set checks = ["select null as mart, null as dimension, null as code where false"] %}
{% for mart in published_marts() %}
    {% set lists = mart_code_lists(mart.model) %}
    {#- a published dimension without a code list in the marts' YAML fails the test too -#}
    {% for dim in mart.dims if execute and dim not in lists %}
        {% do checks.append(
            "select '" ~ mart.model ~ "' as mart, '" ~ dim ~ "' as dimension, 'no meta.code_list in the YAML' as code"
        ) %}
    {% endfor %}
    {% for dim in mart.dims if dim in lists %}
        {% do checks.append(
            "select '" ~ mart.model ~ "' as mart, '" ~ dim ~ "' as dimension, " ~ dim ~ " as code from "
            ~ ref(mart.model) ~ " where " ~ dim ~ " not in ('_T', '_U') and " ~ dim ~ " not in ("
            ~ "select code from " ~ source('ref', 'code_list_values') ~ " where code_list = '" ~ lists[dim] ~ "')"
        ) %}
    {% endfor %}
{% endfor %}
{{ checks | join('\nunion all\n') }}
