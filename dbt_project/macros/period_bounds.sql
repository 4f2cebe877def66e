{#- One row per Jalali month from anbar.jalali_calendar: the period label
    (YYYY-MM, as suppliers write it), its first Gregorian day and the first day
    after it (exclusive, like anbar.periods.Period.end). -#}
{% macro jalali_months() -%}
    select
        to_char(jalali_year, 'FM0000') || '-' || to_char(jalali_month, 'FM00') as period,
        min(gregorian) as period_start,
        max(gregorian) + 1 as period_end
    from {{ source('anbar', 'jalali_calendar') }}
    group by jalali_year, jalali_month
{%- endmacro %}


{#- First day of a Gregorian period label (YYYY-MM). -#}
{% macro gregorian_period_start(period_column) -%}
    to_date({{ period_column }} || '-01', 'YYYY-MM-DD')
{%- endmacro %}


{#- First day after a Gregorian period label (exclusive end). -#}
{% macro gregorian_period_end(period_column) -%}
    cast(to_date({{ period_column }} || '-01', 'YYYY-MM-DD') + interval '1 month' as date)
{%- endmacro %}
