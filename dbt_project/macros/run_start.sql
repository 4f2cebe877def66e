{#- on-run-start, after the pseudonym-key check: the disclosure-control function and the build
    state table. Cosmos runs one dbt process per model and several at once, and two sessions
    creating the same catalog objects together fail ("tuple concurrently updated", or a
    duplicate key in pg_type): so the DDL runs in one statement under a transaction-level
    advisory lock, one process after the other. -#}
{% macro run_start_setup() -%}
do $setup$
begin
    perform pg_advisory_xact_lock(hashtext('anbar: dbt on-run-start'));
    execute $ddl${{ disclosure_control_function() }}$ddl$;
    execute $ddl${{ create_build_state() }}$ddl$;
end
$setup$
{%- endmacro %}
