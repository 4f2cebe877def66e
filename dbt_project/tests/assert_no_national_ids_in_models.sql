-- No model of the warehouse exposes a national-ID column: persons are only
-- known by person_key from staging on.
select
    table_schema,
    table_name,
    column_name
from information_schema.columns
where
    table_schema in ('staging', 'intermediate', 'marts')
    and (column_name ilike '%national_id%' or column_name ilike '%nationalid%')
