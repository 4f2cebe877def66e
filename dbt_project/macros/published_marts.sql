{#- The published marts: their dimensions and the count of persons each cell reports. The
    singular tests check every one of them (tests/assert_*). -#}

{#- The registry code list of each coded dimension of the marts. -#}
{% macro mart_code_lists() -%}
    {{ return({
        'province_code': 'province', 'isic_section': 'isic_section', 'pension_type': 'cspf_pension_type',
        'support_type': 'swo_support_type', 'course_result': 'tvto_course_result', 'sex': 'sex',
        'age_band': 'age_band',
    }) }}
{%- endmacro %}

{% macro published_marts() -%}
    {{ return([
        {'model': 'mart_insured_employment', 'dims': ['period', 'province_code', 'isic_section', 'sex', 'age_band'],
         'count': 'insured_persons'},
        {'model': 'mart_new_pensioners', 'dims': ['period', 'province_code', 'pension_type', 'sex', 'age_band'],
         'count': 'new_pensioners'},
        {'model': 'mart_welfare_beneficiaries', 'dims': ['period', 'province_code', 'support_type', 'sex', 'age_band'],
         'count': 'beneficiaries'},
        {'model': 'mart_trainees', 'dims': ['period', 'province_code', 'course_result', 'sex', 'age_band'],
         'count': 'trainees'},
        {'model': 'mart_linkage_rate', 'dims': ['dataset', 'period'], 'count': 'persons'},
    ]) }}
{%- endmacro %}


{#- Cells of a published mart: counts by each breakdown dimension crossed with sex, each alone,
    sex alone and the total; '_T' marks the dimensions a row totals over. -#}
{% macro mart_cells(breakdowns) -%}
    {%- for dim in breakdowns %}
        coalesce({{ dim }}, '_T') as {{ dim }},
    {%- endfor %}
        coalesce(sex, '_T') as sex
{%- endmacro %}


{% macro mart_grouping_sets(breakdowns) -%}
    grouping sets (
        {%- for dim in breakdowns %}
        (period, {{ dim }}, sex),
        {%- endfor %}
        {%- for dim in breakdowns %}
        (period, {{ dim }}),
        {%- endfor %}
        (period, sex),
        (period)
    )
{%- endmacro %}
