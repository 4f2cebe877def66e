{#- The published marts: their dimensions and the count of persons each cell reports. The
    singular tests check every one of them (tests/assert_*). -#}

{#- The registry code list of each coded column of a model: `meta.code_list` of its columns in
    the models' YAML, the one place the marts' codes are tied to the registry (the SDMX export
    reads the same from the manifest). Empty at parse time, when the graph is not there yet. -#}
{% macro mart_code_lists(model_name) -%}
    {%- set lists = {} -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == model_name -%}
            {%- for column in node.columns.values() -%}
                {%- set code_list = column.meta.get('code_list') -%}
                {%- if code_list -%}{%- do lists.update({column.name: code_list}) -%}{%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(lists) }}
{%- endmacro %}

{#- `by`: columns never summed over (each value is a table of its own); `dims`: the breakdowns,
    whose '_T' rows are totals; `count`: persons in the cell; `measures`: the other values. -#}
{% macro published_marts() -%}
    {{ return([
        {'model': 'mart_insured_employment', 'by': ['period'],
         'dims': ['province_code', 'isic_section', 'sex', 'age_band'],
         'count': 'insured_persons', 'measures': ['avg_insured_wage_rials']},
        {'model': 'mart_new_pensioners', 'by': ['period'], 'dims': ['province_code', 'pension_type', 'sex', 'age_band'],
         'count': 'new_pensioners', 'measures': []},
        {'model': 'mart_welfare_beneficiaries', 'by': ['period'],
         'dims': ['province_code', 'support_type', 'sex', 'age_band'], 'count': 'beneficiaries', 'measures': []},
        {'model': 'mart_trainees', 'by': ['period'], 'dims': ['province_code', 'course_result', 'sex', 'age_band'],
         'count': 'trainees', 'measures': ['followed_up', 'insured_after_6_months']},
        {'model': 'mart_linkage_rate', 'by': ['dataset', 'period'], 'dims': [], 'count': 'persons',
         'measures': ['linked_persons', 'linkage_rate']},
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
