-- The data catalog's lineage: one row per edge of dbt's graph between the warehouse's nodes, from a source
-- (a registry dataset in clean, a ledger table in anbar, the code lists in ref) or a model to a model that
-- reads it (its depends_on in the manifest, macros/catalog.sql). Follow the edges from a registry
-- dataset through staging, intermediate and core to the marts (catalog_dataset_lineage does).
with

edges as (

    {{ catalog_values(catalog_lineage_edges(), [
        'parent_id', 'parent_type', 'parent_name', 'parent_layer', 'parent_relation', 'dataset_key',
        'child_id', 'child_name', 'child_layer', 'child_relation',
    ]) }}

),

final as (

    select
        {{ surrogate_key(['parent_id', 'child_id']) }} as lineage_edge_id,
        parent_id,
        parent_type,
        parent_name,
        parent_layer,
        parent_relation,
        dataset_key,
        child_id,
        child_name,
        child_layer,
        child_relation
    from edges

)

select * from final
