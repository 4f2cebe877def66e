with

source as (

    select * from {{ source('ref', 'code_list_values') }}

),

renamed as (

    select
        {{ surrogate_key(['code_list', 'code']) }} as code_list_value_id,
        code_list,
        code,
        label_fa,
        label_en

    from source

)

select * from renamed
