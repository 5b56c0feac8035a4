"""Availability models, seeded sampling of Effects and Monte Carlo risk."""

from __future__ import annotations

import sys
from dataclasses import fields, replace
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

import numpy as np
import pytest
from fleets import Tier, fleet, pool, service

from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import Criticality, Fleet
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions
from cloudhedge.stress.effects import Effects
from cloudhedge.stress.impact import immediate
from cloudhedge.stress.risk import (
    DEFAULT_PROVIDER,
    DEFAULT_REGION,
    SAMPLE_BLOCK,
    AvailabilityModel,
    ProviderAvailability,
    RiskModel,
    RiskResult,
    SampleOutcomes,
    SpotModel,
    cvar,
    monte_carlo,
    sample,
)
from cloudhedge.stress.state import PlanState

H = 730.0
NEVER = AvailabilityModel(outages_per_year=0.0, median_hours=1.0, spread=0.0,
                          lost_fraction=1.0)
NO_SPOT = SpotModel(preemption_rate_per_hour=0.0, reacquire_hours=0.0, concentration=1.0)


def _fleet() -> Fleet:
    return fleet([pool("aws-1", "aws", "h100", 100, 2.0, region="us-east-1"),
                  pool("aws-2", "aws", "h100", 100, 2.2, region="us-west-2"),
                  pool("aws-spot", "aws", "h100", 50, 0.9, tier=Tier.SPOT, region="us-east-1"),
                  pool("gcp-1", "gcp", "h100", 100, 2.1, region="us-central1"),
                  pool("az-1", "azure", "h100", 40, 2.4, region="eastus")],
                 inference=[service("chat", 360_000, crit=Criticality.CRITICAL),
                            service("mail", 240_000)])


@cache
def _state() -> PlanState:
    f = _fleet()
    plan = make_plan(f, PlanOptions(solve=SolveOptions(gap=0.0), explain=False))
    assert plan.status == "optimal"
    return PlanState.from_plan(f, plan)


def _numbers(r: RiskResult) -> dict[str, np.ndarray]:
    return {f.name: getattr(r.per_sample, f.name) for f in fields(SampleOutcomes)}


# ---------------------------------------------------------------- model from a mapping
def test_overrides_are_partial_and_inherit_level_by_level() -> None:
    model = RiskModel.from_mapping({
        "region": {"median_hours": 6},
        "providers": {"aws": {"region": {"outages_per_year": 3}, "provider": {
            "lost_fraction": 0.9}}},
        "regions": {"aws/us-east-1": {"spread": 0.2}, "gcp/us-central1": {
            "outages_per_period": 0.5}},
        "spot": {"reacquire_hours": 4},
    })
    assert model.region == replace(DEFAULT_REGION, median_hours=6.0)
    east = model.region_model("aws", "us-east-1")
    assert (east.outages_per_year, east.median_hours, east.spread) == (3.0, 6.0, 0.2)
    assert model.region_model("aws", "us-west-2").outages_per_year == 3.0
    assert model.region_model("azure", "eastus") == model.region
    assert model.region_model("gcp", "us-central1").rate_per_period(H) == 0.5
    assert model.provider_model("aws") == replace(DEFAULT_PROVIDER, lost_fraction=0.9)
    assert model.provider_model("gcp") == DEFAULT_PROVIDER
    assert model.spot.reacquire_hours == 4.0
    assert DEFAULT_REGION.rate_per_period(H) == pytest.approx(H / 8760)


def test_a_bad_mapping_lists_every_problem_with_its_path() -> None:
    with pytest.raises(SpecError) as err:
        RiskModel.from_mapping({
            "region": {"median_hours": 0, "lost_fraction": 1.5, "colour": "red"},
            "provider": {"outages_per_year": 1, "outages_per_period": 0.1},
            "regions": {"us-east-1": {}},
            "spot": "often",
            "zones": {},
        }, file="fleet.yaml")
    paths = {i.path for i in err.value.issues}
    assert paths == {"availability.region.median_hours", "availability.region.lost_fraction",
                     "availability.region.colour", "availability.provider",
                     "availability.regions.us-east-1", "availability.spot",
                     "availability.zones"}
    assert all(i.file == "fleet.yaml" for i in err.value.issues)
    assert "expected a number > 0" in str(err.value)


def test_overrides_must_name_providers_and_regions_of_the_fleet() -> None:
    model = RiskModel.from_mapping({"regions": {"aws/eu-west-9": {"spread": 1}},
                                    "providers": {"ibm": {}}})
    with pytest.raises(SpecError, match="eu-west-9") as err:
        next(sample(_fleet(), model, 4, seed=0))
    assert "availability.providers.ibm" in str(err.value)


# ---------------------------------------------------------------- sampling
def test_region_outages_hit_every_pool_of_the_region_and_nothing_else() -> None:
    model = RiskModel(region=replace(NEVER, outages_per_period=0.3),
                      provider=NEVER, spot=NO_SPOT)
    eff = next(sample(_fleet(), model, 300, seed=3, chunk=512))
    names = [p.name for p in _fleet().pools]
    east = [names.index("aws-1"), names.index("aws-spot")]
    assert eff.down_hours.shape == (300, 5, 3)
    assert np.array_equal(eff.down_hours[:, east[0]], eff.down_hours[:, east[1]])
    assert not np.array_equal(eff.down_hours[:, east[0]], eff.down_hours[:, 1])
    hit = eff.down_hours > 0
    assert 0.15 < hit.mean() < 0.4  # P(at least one outage) = 1 - exp(-0.3) = 0.26
    assert np.all(eff.lost_fraction[hit] == 1.0) and np.all(eff.lost_fraction[~hit] == 0.0)
    assert np.all(eff.down_hours <= H) and np.all(eff.price_factor == 1.0)


def test_provider_outages_hit_every_pool_of_the_provider() -> None:
    model = RiskModel(region=NEVER, provider=replace(NEVER, outages_per_period=0.5,
                                                     lost_fraction=0.4, median_hours=5.0),
                      spot=NO_SPOT)
    eff = next(sample(_fleet(), model, 200, seed=5))
    aws = eff.down_hours[:, :3]
    assert np.all(aws == aws[:, :1]) and np.any(aws > 0)
    hours = eff.down_hours[eff.down_hours > 0]  # each outage lasts 5 h (no spread)
    assert np.allclose(hours % 5.0, 0.0) and 5.0 in hours
    assert set(np.unique(eff.lost_fraction)) <= {0.0, 0.4}


def test_spot_pools_lose_a_random_share_with_the_modelled_mean() -> None:
    model = RiskModel(region=NEVER, provider=NEVER,
                      spot=SpotModel(preemption_rate_per_hour=0.0, reacquire_hours=2.0,
                                     concentration=4.0))
    eff = next(sample(_fleet(), model, 2048, seed=1, chunk=2048))
    spot = eff.lost_fraction[:, 2]
    rate = 0.05  # the pool's own preemption rate (tests/planning/fleets.py)
    assert spot.mean() == pytest.approx(rate * 2 / (1 + rate * 2), rel=0.05)
    assert np.all(eff.down_hours[:, 2][spot > 0] == H)
    assert np.all(eff.lost_fraction[:, [0, 1, 3, 4]] == 0.0)


def test_samples_do_not_depend_on_the_chunking() -> None:
    f = _fleet()
    model = RiskModel()
    n = 2 * SAMPLE_BLOCK + 17
    small = list(sample(f, model, n, seed=9, chunk=SAMPLE_BLOCK))
    big = list(sample(f, model, n, seed=9, chunk=4 * SAMPLE_BLOCK))
    assert [e.samples for e in small] == [SAMPLE_BLOCK, SAMPLE_BLOCK, 17]
    assert len(big) == 1
    for name in ("lost_fraction", "down_hours"):
        joined = np.concatenate([getattr(e, name) for e in small])
        assert np.array_equal(joined, getattr(big[0], name))
    prefix = next(sample(f, model, 10, seed=9))
    assert np.array_equal(prefix.down_hours, big[0].down_hours[:10])


# ---------------------------------------------------------------- Monte Carlo
def test_the_same_seed_gives_the_same_numbers_whatever_the_chunks_and_workers() -> None:
    state = _state()
    model = RiskModel.from_mapping({"region": {"outages_per_year": 40}})
    n = 3 * SAMPLE_BLOCK + 5
    base = monte_carlo(state, model, n, seed=11)
    again = monte_carlo(state, model, n, seed=11, chunk=SAMPLE_BLOCK)
    parallel = monte_carlo(state, model, n, seed=11, chunk=SAMPLE_BLOCK, workers=2)
    other = monte_carlo(state, model, n, seed=12)
    for result in (again, parallel):
        for name, values in _numbers(base).items():
            assert np.array_equal(values, _numbers(result)[name]), name
        assert result.service_stats() == base.service_stats()
        assert result.cost_stats() == base.cost_stats()
    assert base.overall_stats().expected_unserved_tokens > 0
    assert not np.array_equal(base.per_sample.unserved_tokens, other.per_sample.unserved_tokens)
    assert base.overall_stats() != other.overall_stats()


def test_without_outages_there_is_no_shortfall_and_no_extra_cost() -> None:
    model = RiskModel(region=NEVER, provider=NEVER, spot=NO_SPOT)
    result = monte_carlo(_state(), model, 300, seed=0)
    overall = result.overall_stats()
    assert overall.p99 == pytest.approx(0.0, abs=1e-9)
    assert overall.cvar95 == pytest.approx(0.0, abs=1e-9)
    assert overall.expected_unserved_tokens == pytest.approx(0.0, abs=1e3)
    assert result.cost_stats().cvar95_extra_usd == 0.0
    assert result.cost_stats().expected_usd == pytest.approx(result.plan_cost_usd)


def test_a_certain_outage_gives_the_immediate_answer_in_every_sample() -> None:
    state = _state()
    certain = replace(NEVER, outages_per_period=50.0, median_hours=H)  # always, all month
    model = RiskModel(region=NEVER, provider=NEVER, spot=NO_SPOT,
                      providers={"aws": ProviderAvailability(region=NEVER, provider=certain)})
    result = monte_carlo(state, model, 8, seed=2)
    P, T = len(state.pools), state.periods
    aws = np.array([p.provider == "aws" for p in state.pools])
    lost = np.zeros((1, P, T))
    lost[:, aws] = 1.0
    imp = immediate(state, Effects(lost, lost * H, np.ones((1, P, T)), H))
    expected = imp.shortfall()[0]
    assert expected.sum() > 0  # losing aws does hurt this plan
    assert result.shortfall == pytest.approx(np.tile(expected, (8, 1)), rel=1e-9)
    stats = {s.name: s for s in result.service_stats()}
    assert stats["chat"].p50 == pytest.approx(expected[0]) == stats["chat"].cvar95
    assert result.cost_stats().expected_extra_usd == pytest.approx(imp.extra_cost_usd[0])


def test_cvar_is_the_mean_of_the_worst_tail() -> None:
    values = np.arange(100, dtype=float)  # worst 5%: 95..99
    assert cvar(values) == pytest.approx(97.0)
    assert cvar(np.array([3.0])) == 3.0
    assert cvar(values, 0.5) == pytest.approx(74.5)


def test_risk_result_reports_training_and_batch_per_workload() -> None:
    result = monte_carlo(_state(), RiskModel(), 64, seed=4)
    assert result.training_risk() == [] and result.batch_risk() == []
    assert [s.name for s in result.service_stats()] == ["chat", "mail"]
    assert result.served_share.shape == (64, 2)
    assert np.all((result.shortfall_total >= 0) & (result.shortfall_total <= 1))
