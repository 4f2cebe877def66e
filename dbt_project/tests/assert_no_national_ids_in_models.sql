-- No model of the warehouse exposes a national-ID column: persons are only
-- known by person_key from staging on. The refs make the test run after the models.
-- depends_on: {{ ref('stg_sso__insured_persons') }}
-- depends_on: {{ ref('stg_sso__workplaces') }}
-- depends_on: {{ ref('stg_tvto__trainees') }}
-- depends_on: {{ ref('fct_insured_employment_monthly') }}
-- depends_on: {{ ref('fct_insured_employment') }}
-- depends_on: {{ ref('fct_pensions') }}
-- depends_on: {{ ref('fct_training') }}
-- depends_on: {{ ref('dim_person') }}
-- depends_on: {{ ref('dim_person_history') }}
-- depends_on: {{ ref('dim_workplace') }}
-- depends_on: {{ ref('fct_welfare_benefits') }}
-- depends_on: {{ ref('mart_insured_employment') }}
-- depends_on: {{ ref('mart_new_pensioners') }}
-- depends_on: {{ ref('mart_trainees') }}
-- depends_on: {{ ref('mart_linkage_rate') }}
-- depends_on: {{ ref('mart_welfare_beneficiaries') }}
select
    table_schema,
    table_name,
    column_name
from information_schema.columns
where
    table_schema in ('staging', 'intermediate', 'core', 'marts')
    and (column_name ilike '%national_id%' or column_name ilike '%nationalid%')
