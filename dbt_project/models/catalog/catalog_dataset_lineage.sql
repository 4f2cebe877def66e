-- Every warehouse model a registry dataset reaches, following catalog_lineage from the dataset's clean
-- source: one row per dataset and model, with the fewest edges between them (edge_count; 1: its staging model).
with recursive

edges as (

    select * from {{ ref('catalog_lineage') }}

),

reached as (

    select
        dataset_key,
        child_id,
        child_name,
        child_layer,
        child_relation,
        1 as edge_count
    from edges
    where dataset_key is not null

    union all

    select
        reached.dataset_key,
        edges.child_id,
        edges.child_name,
        edges.child_layer,
        edges.child_relation,
        reached.edge_count + 1 as edge_count
    from reached
    inner join edges
        on reached.child_id = edges.parent_id
    -- the graph is acyclic; the bound only keeps a broken manifest from looping
    where reached.edge_count < 50

),

final as (

    select
        {{ surrogate_key(['dataset_key', 'child_id']) }} as dataset_lineage_id,
        dataset_key,
        child_id as model_id,
        child_name as model_name,
        child_layer as layer,
        child_relation as relation_name,
        min(edge_count) as edge_count
    from reached
    group by dataset_key, child_id, child_name, child_layer, child_relation

)

select * from final
