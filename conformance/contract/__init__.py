"""The contract as data: schemas, rules, models, profiles, the request oracle, spec-diff."""
