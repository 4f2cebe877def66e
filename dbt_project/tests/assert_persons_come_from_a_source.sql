-- Every person of int_persons is an SSO insured person or a TVTO trainee.
select person_key
from {{ ref('int_persons') }}
where not (is_sso_insured or is_tvto_trainee)
