-- The data catalog's variables: one row per column of a registry dataset (from the generated clean
-- sources: type, bilingual description, code list, access tier, required) and one per documented column
-- of a warehouse model (description, access tier from meta.access_tier or the layer's default), each
-- with its personal-data flag (the rule is in docs/catalog.md and the column's doc).
{#- A variable's columns, in the order of both halves of the union. -#}
{%- set variable_columns = [
    'object_name', 'variable_kind', 'dataset_key', 'model_name', 'layer', 'relation_name',
    'column_name', 'ordinal_position', 'data_type', 'description', 'description_fa', 'description_en',
    'code_list', 'access_tier', 'access_tier_source', 'is_personal_data', 'identifier_kind', 'is_required',
    'is_primary_key', 'supplier_calendar', 'min_value', 'max_value',
] %}

with

registry_columns as (

    {{ catalog_values(catalog_registry_columns(), [
        'dataset_key', 'column_name', 'ordinal_position', 'data_type', 'description_fa', 'description_en',
        'access_tier', 'is_required', 'is_primary_key', 'identifier_kind', 'code_list', 'supplier_calendar',
        'min_value', 'max_value',
    ]) }}

),

model_columns as (

    {{ catalog_values(catalog_model_columns(), [
        'model_name', 'layer', 'relation_name', 'column_name', 'ordinal_position', 'data_type', 'description',
        'access_tier', 'access_tier_source', 'code_list', 'personal_data',
    ]) }}

),

registry_datasets as (

    {{ catalog_values(catalog_registry_datasets(), ['dataset_key', 'source_relation']) }}

),

code_list_values as (

    select * from {{ ref('stg_ref__code_list_values') }}

),

code_lists as (

    select
        code_list,
        count(*) as code_count
    from code_list_values
    group by code_list

),

-- Datasets whose records are persons: one of their columns is a person's national ID.
person_level_datasets as (

    select distinct dataset_key
    from registry_columns
    where identifier_kind = 'person'

),

dataset_variables as (

    select
        registry_columns.dataset_key as object_name,
        registry_columns.dataset_key,
        registry_columns.column_name,
        registry_columns.data_type,
        registry_columns.description_fa,
        registry_columns.description_en,
        registry_columns.access_tier,
        registry_columns.identifier_kind,
        registry_columns.code_list,
        registry_columns.supplier_calendar,
        registry_datasets.source_relation as relation_name,
        'dataset' as variable_kind,
        'source' as layer,
        'registry' as access_tier_source,
        cast(null as text) as model_name,
        cast(registry_columns.ordinal_position as integer) as ordinal_position,
        cast(registry_columns.is_required as boolean) as is_required,
        cast(registry_columns.is_primary_key as boolean) as is_primary_key,
        cast(registry_columns.min_value as numeric) as min_value,
        cast(registry_columns.max_value as numeric) as max_value,
        registry_columns.description_en || ' / ' || registry_columns.description_fa as description,
        coalesce(
            registry_columns.identifier_kind = 'person'
            or (
                registry_columns.data_type = 'date'
                and registry_columns.dataset_key in (select person_level_datasets.dataset_key from person_level_datasets)
            ),
            false
        ) as is_personal_data
    from registry_columns
    inner join registry_datasets
        on registry_columns.dataset_key = registry_datasets.dataset_key

),

-- Registry columns that are personal data, by name: a model column of that name (or ending in _<name>)
-- carries the value on.
personal_column_names as (

    select distinct column_name
    from dataset_variables
    where is_personal_data and identifier_kind is null

),

model_variables as (

    select
        model_columns.model_name as object_name,
        model_columns.column_name,
        model_columns.data_type,
        model_columns.access_tier,
        model_columns.code_list,
        model_columns.relation_name,
        model_columns.model_name,
        model_columns.layer,
        model_columns.access_tier_source,
        model_columns.description,
        'model' as variable_kind,
        cast(null as text) as dataset_key,
        cast(null as text) as description_fa,
        cast(null as text) as description_en,
        cast(null as text) as identifier_kind,
        cast(null as text) as supplier_calendar,
        cast(null as boolean) as is_required,
        cast(null as boolean) as is_primary_key,
        cast(null as numeric) as min_value,
        cast(null as numeric) as max_value,
        cast(model_columns.ordinal_position as integer) as ordinal_position,
        coalesce(
            cast(model_columns.personal_data as boolean),
            model_columns.column_name = 'person_key'
            or exists (
                select 1
                from personal_column_names
                where
                    model_columns.column_name = personal_column_names.column_name
                    or model_columns.column_name like '%\_' || personal_column_names.column_name
            )
        ) as is_personal_data
    from model_columns

),

unioned as (

    select {{ variable_columns | join(', ') }}
    from dataset_variables

    union all

    select {{ variable_columns | join(', ') }}
    from model_variables

),

final as (

    select
        {{ surrogate_key(['unioned.object_name', 'unioned.column_name']) }} as variable_id,
        unioned.*,
        code_lists.code_count
    from unioned
    left join code_lists
        on unioned.code_list = code_lists.code_list

)

select * from final
