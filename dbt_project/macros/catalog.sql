{#- The data catalog (models/catalog/, docs/catalog.md) is read from dbt's graph, so it says what the
    manifest says: the registry reaches dbt as the generated clean sources (their meta and column meta,
    written by anbar.dbt.sources), the warehouse as the models and their YAML docs, the lineage as the
    nodes' depends_on. Each macro returns a list of rows (dicts); catalog_values renders them as SQL.
    The graph exists only at execution: at parse time (and for sqlfluff) the lists are empty. -#}


{#- meta of a node or column: its config.meta over its meta (dbt >= 1.10 writes both). -#}
{% macro catalog_meta(node) -%}
    {%- set merged = {} -%}
    {%- do merged.update(node.meta or {}) -%}
    {%- if node.config is defined and node.config is mapping -%}
        {%- do merged.update(node.config.meta or {}) -%}
    {%- endif -%}
    {{ return(merged) }}
{%- endmacro %}


{#- The registry datasets: the sources of `clean`, one per registry dataset. -#}
{% macro catalog_registry_sources() -%}
    {%- set g = graph if execute and graph is defined else none -%}
    {%- set found = [] -%}
    {%- if g is not none -%}
        {%- for node in g.sources.values() | sort(attribute='name') if node.source_name == 'clean' -%}
            {%- do found.append(node) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}


{#- A registry column is a delivered column: the load's own columns (_submission_id, _file, ...) are not. -#}
{% macro catalog_is_registry_column(name) -%}
    {{ return(not name.startswith('_')) }}
{%- endmacro %}


{#- One row per registry dataset. -#}
{% macro catalog_registry_datasets() -%}
    {%- set rows = [] -%}
    {%- for node in catalog_registry_sources() -%}
        {%- set meta = catalog_meta(node) -%}
        {%- set variables = [] -%}
        {%- for column in node.columns.values() if catalog_is_registry_column(column.name) -%}
            {%- do variables.append(column.name) -%}
        {%- endfor -%}
        {%- do rows.append({
            'dataset_key': node.name,
            'org': meta.get('org'),
            'dataset': meta.get('dataset'),
            'org_name_fa': meta.get('org_name_fa'),
            'org_name_en': meta.get('org_name_en'),
            'description_fa': meta.get('description_fa'),
            'description_en': meta.get('description_en'),
            'periodicity': meta.get('period'),
            'calendar': meta.get('calendar'),
            'due_day': meta.get('due_day'),
            'grace_days': meta.get('grace_days'),
            'transport': meta.get('transport'),
            'access_tier': meta.get('access_tier'),
            'schema_version': meta.get('schema_version'),
            'primary_key': (meta.get('primary_key') or []) | join(', '),
            'asset_uri': meta.get('asset_uri'),
            'source_relation': node.schema ~ '.' ~ node.identifier,
            'variable_count': variables | length,
        }) -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{#- One row per column of a registry dataset, in delivery order. -#}
{% macro catalog_registry_columns() -%}
    {%- set rows = [] -%}
    {%- for node in catalog_registry_sources() -%}
        {%- set primary_key = catalog_meta(node).get('primary_key') or [] -%}
        {%- for column in node.columns.values() if catalog_is_registry_column(column.name) -%}
            {%- set meta = catalog_meta(column) -%}
            {%- do rows.append({
                'dataset_key': node.name,
                'column_name': column.name,
                'ordinal_position': loop.index,
                'data_type': column.data_type,
                'description_fa': meta.get('description_fa'),
                'description_en': meta.get('description_en'),
                'access_tier': meta.get('access_tier'),
                'is_required': meta.get('required', false),
                'is_primary_key': column.name in primary_key,
                'identifier_kind': meta.get('identifier'),
                'code_list': meta.get('code_list'),
                'supplier_calendar': meta.get('supplier_calendar'),
                'min_value': meta.get('min'),
                'max_value': meta.get('max'),
            }) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{#- The warehouse models the catalog describes: the project's models but the catalog's own. -#}
{% macro catalog_warehouse_models() -%}
    {%- set g = graph if execute and graph is defined else none -%}
    {%- set found = [] -%}
    {%- if g is not none -%}
        {%- for node in g.nodes.values() | sort(attribute='unique_id')
            if node.resource_type == 'model' and node.package_name == project_name and node.fqn[1] != 'catalog' -%}
            {%- do found.append(node) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}


{#- Access tier of a warehouse model column: meta.access_tier of the column, else of the model, else the
    default of its layer (var catalog_layer_access_tiers): person-level layers are enclave only, the
    published marts open. Returns (tier, where it came from). -#}
{% macro catalog_column_access_tier(node, column) -%}
    {%- set column_tier = catalog_meta(column).get('access_tier') -%}
    {%- set model_tier = catalog_meta(node).get('access_tier') -%}
    {%- if column_tier -%}
        {{ return((column_tier, 'column meta')) }}
    {%- elif model_tier -%}
        {{ return((model_tier, 'model meta')) }}
    {%- endif -%}
    {{ return((var('catalog_layer_access_tiers', {}).get(node.fqn[1]), 'layer default')) }}
{%- endmacro %}


{#- One row per documented column of a warehouse model. -#}
{% macro catalog_model_columns() -%}
    {%- set rows = [] -%}
    {%- for node in catalog_warehouse_models() -%}
        {%- for column in node.columns.values() -%}
            {%- set tier = catalog_column_access_tier(node, column) -%}
            {%- do rows.append({
                'model_name': node.name,
                'layer': node.fqn[1],
                'relation_name': node.schema ~ '.' ~ node.alias,
                'column_name': column.name,
                'ordinal_position': loop.index,
                'data_type': column.data_type,
                'description': column.description,
                'access_tier': tier[0],
                'access_tier_source': tier[1],
                'code_list': catalog_meta(column).get('code_list'),
                'personal_data': catalog_meta(column).get('personal_data'),
            }) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{#- One row per edge of the lineage: a source or model the model depends on -> the model. -#}
{% macro catalog_lineage_edges() -%}
    {%- set g = graph if execute and graph is defined else none -%}
    {%- set rows = [] -%}
    {%- for node in catalog_warehouse_models() -%}
        {%- for parent_id in node.depends_on.nodes | unique | sort -%}
            {%- set parent = none -%}
            {%- if parent_id in g.sources -%}
                {%- set parent = g.sources[parent_id] -%}
                {%- set parent_name = parent.source_name ~ '.' ~ parent.name -%}
                {%- set parent_layer = 'source' -%}
                {%- set dataset_key = parent.name if parent.source_name == 'clean' else none -%}
            {%- elif parent_id in g.nodes -%}
                {%- set parent = g.nodes[parent_id] -%}
                {%- set parent_name = parent.name -%}
                {%- set parent_layer = parent.fqn[1] if parent.resource_type == 'model' else parent.resource_type -%}
                {%- set dataset_key = none -%}
            {%- endif -%}
            {%- if parent is not none -%}
                {%- do rows.append({
                    'parent_id': parent_id,
                    'parent_type': parent.resource_type,
                    'parent_name': parent_name,
                    'parent_layer': parent_layer,
                    'parent_relation': parent.schema ~ '.' ~ (parent.identifier if parent.resource_type == 'source' else parent.alias),
                    'dataset_key': dataset_key,
                    'child_id': node.unique_id,
                    'child_name': node.name,
                    'child_layer': node.fqn[1],
                    'child_relation': node.schema ~ '.' ~ node.alias,
                }) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{#- A value as an SQL literal. -#}
{% macro catalog_literal(value) -%}
    {%- if value is none -%}
        null
    {%- elif value is sameas true or value is sameas false -%}
        {{ 'true' if value else 'false' }}
    {%- elif value is number -%}
        {{ value }}
    {%- else -%}
        '{{ (value | string) | replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}


{#- The rows as a select of the given columns (all text when there is no row: cast them). -#}
{% macro catalog_values(rows, columns) -%}
    {%- if rows | length > 0 -%}
        select *
        from (
            values
            {%- for row in rows %}
                ({% for column in columns %}{{ catalog_literal(row[column]) }}{{ ', ' if not loop.last }}{% endfor %})
                {{- ',' if not loop.last }}
            {%- endfor %}
        ) as catalog_rows ({{ columns | join(', ') }})
    {%- else -%}
        select {% for column in columns %}cast(null as text) as {{ column }}{{ ', ' if not loop.last }}{% endfor %}
        where false
    {%- endif -%}
{%- endmacro %}
