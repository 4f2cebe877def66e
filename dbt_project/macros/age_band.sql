{#- The age band (registry code list age_band) of a person born on birth_date, at at_date. -#}
{% macro age_band(birth_date, at_date) -%}
    case
        when {{ birth_date }} is null or {{ at_date }} is null then 'unknown'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 15 then '00-14'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 25 then '15-24'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 35 then '25-34'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 45 then '35-44'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 55 then '45-54'
        when extract(year from age({{ at_date }}, {{ birth_date }})) < 65 then '55-64'
        else '65+'
    end
{%- endmacro %}
