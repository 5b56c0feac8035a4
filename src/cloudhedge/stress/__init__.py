"""``cloudhedge stress``: what outages, supply shocks, price and demand changes do to a plan.

    scenario_schema.py  scenario YAML as pydantic models (the file's shape)
    scenario.py         resolved scenarios and events; load_scenarios; effects()
    library.py          built-in scenarios and families derived from the fleet
    effects.py          Effects: a scenario (or Monte Carlo samples) as arrays
    state.py            a plan.json read back into arrays over the fleet's pools
    impact.py           immediate impact of Effects on a fixed plan (vectorised)
    risk.py             availability models and Monte Carlo sampling
    run.py              scenarios x plans: immediate, replanned, risk, hedge value
"""
