"""Readable reasons: why each workload sits where it does, and why demand went unmet."""

from __future__ import annotations

import numpy as np

from cloudhedge.core.models import Tier
from cloudhedge.core.plan import Reason, Unmet
from cloudhedge.planning.build import Model
from cloudhedge.planning.decode import EPS, Decoded
from cloudhedge.planning.explain import fmt_usd, period_span
from cloudhedge.planning.index import SECONDS_PER_HOUR, FleetIndex


def _pool_words(ix: FleetIndex, p: int) -> str:
    pool = ix.pools[p]
    return f"{pool.name} ({pool.accelerator}, {pool.provider}/{pool.region}, {pool.tier})"


def _tight_policies(ix: FleetIndex, model: Model, d: Decoded, t: int, unit_label: str) -> list[str]:
    """Policy rows at their bound in period t (caps, this unit's survivability, budget)."""
    act = model.A @ d.x
    out: list[str] = []
    for name, blk in model.rows.items():
        if not (name.startswith("cap:") or name in ("survivability", "budget_total",
                                                     "budget_period")):
            continue
        for i in range(blk.size):
            if blk.period[i] != t and name != "budget_total":
                continue
            ident = blk.ids[i]
            if name == "survivability" and not ident.endswith("|" + unit_label):
                continue
            r = blk.start + i
            bound = model.row_hi[r] if blk.sense < 0 else model.row_lo[r]
            if abs(act[r] - bound) <= 1e-6 * max(1.0, abs(bound)):
                out.append(ident)
    return out


def unmet_rows(ix: FleetIndex, model: Model, d: Decoded) -> list[Unmet]:
    out: list[Unmet] = []
    spare = np.clip(ix.capacity - d.use, 0, None)
    for s, unit in enumerate(ix.units):
        pools = ix.inf_pool[ix.inf_unit == s]
        for t_ in np.flatnonzero(d.unmet_tokens[s] > EPS * max(1.0, ix.demand[s].max())):
            t = int(t_)
            if pools.size == 0:
                cause = ("no eligible pool: no compatible accelerator is allowed by "
                         "exclusivity, residency and tier for this demand")
            elif spare[pools, t].sum() <= 1e-3:
                cause = (f"capacity: all {pools.size} eligible pools are full in "
                         f"{ix.fleet.horizon.label(t)}")
            else:
                tight = _tight_policies(ix, model, d, t, unit.label)
                cause = ("policy: eligible pools have free chips but " + ", ".join(tight)
                         + " bind") if tight else "penalty lower than the cost of serving"
            out.append(Unmet(workload=unit.service.name, kind="inference",
                             jurisdiction=unit.jurisdiction, period=t,
                             amount=round(float(d.unmet_tokens[s, t]), 3), unit="tokens/s",
                             cause=cause))
    for r, run in enumerate(ix.fleet.training):
        if d.train_choice[r] >= 0:
            continue
        n = ix.eligible_count.get(run.name, 0)
        cause = (f"no compatible pool has {run.gang_chips} chips free for the whole run "
                 f"inside its window" if n == 0 else
                 f"{n} pools could host the gang, but capacity left by other workloads or "
                 f"the policies do not allow it in the window")
        out.append(Unmet(workload=run.name, kind="training", amount=run.chip_hours,
                         unit="reference chip-hours", cause=cause))
    for j, job in enumerate(ix.fleet.batch):
        if d.batch_unmet[j] > 1e-3:
            cause = ("no compatible pool" if ix.eligible_count.get(job.name, 0) == 0 else
                     "capacity or policies leave too few chip-hours in the window")
            out.append(Unmet(workload=job.name, kind="batch", amount=float(d.batch_unmet[j]),
                             unit="reference chip-hours", cause=cause))
    return out


def reasons(ix: FleetIndex, model: Model, d: Decoded) -> list[Reason]:
    out: list[Reason] = []
    T = ix.T
    wc = d.wc.tocsc()
    for w, name in enumerate(d.workloads):
        col = wc[:, w].toarray().ravel().reshape(len(ix.pools), T)
        per_pool = col.sum(axis=1)
        used = np.flatnonzero(per_pool > EPS)
        n_elig = ix.eligible_count.get(name)
        kind = d.workload_kind[w]
        if kind == "training":
            r = w
            o = int(d.train_choice[r])
            if o < 0:
                out.append(Reason(workload=name, text="not scheduled (see unmet demand)"))
                continue
            p = int(ix.train_pool[o])
            periods = list(range(int(ix.train_start[o]),
                                 int(ix.train_start[o] + ix.train_duration[o])))
            why = ("runs on committed capacity, already paid for under take-or-pay"
                   if ix.pools[p].tier is Tier.COMMITTED else
                   f"billed at {ix.pools[p].price_usd_per_chip_hour:.2f} USD/chip-h")
            cheaper = [q for q in np.flatnonzero(ix.train_run == r)
                       if ix.price[ix.train_pool[q]] < ix.price[p] - 1e-9
                       and ix.pools[ix.train_pool[q]].tier is not Tier.COMMITTED]
            alt = ""
            if cheaper:
                q = min(cheaper, key=lambda q: ix.price[ix.train_pool[q]])
                alt = (f"; cheaper {_pool_words(ix, int(ix.train_pool[q]))} was not taken "
                       f"because its chips are needed elsewhere or a policy binds")
            out.append(Reason(workload=name, text=(
                f"whole gang of {ix.fleet.training[r].gang_chips} chips on "
                f"{_pool_words(ix, p)} in {period_span(ix, periods)}; {why}; "
                f"{n_elig} eligible pools{alt}")))
            continue
        if used.size == 0:
            out.append(Reason(workload=name, text="no chips allocated (see unmet demand)"))
            continue
        total = per_pool.sum()
        top = used[np.argsort(-per_pool[used])][:4]
        parts = ", ".join(f"{ix.pools[p].name} {per_pool[p] / total:.0%}" for p in top)
        providers = sorted({ix.pools[p].provider for p in used})
        cost = float((col.ravel() * d.rate).sum())
        if kind == "inference":
            svc = next(s for s in ix.fleet.inference if s.name == name)
            tok = sum(float(((ix.demand[s] - d.unmet_tokens[s]).clip(min=0)).sum())
                      for s, u in enumerate(ix.units) if u.service.name == name)
            tok *= SECONDS_PER_HOUR * ix.hours
            unit_cost = f"; {cost / tok * 1e6:.3f} USD per million tokens" if tok else ""
            elig = ", ".join(f"{u.jurisdiction}: {ix.eligible_count.get(u.label, 0)}"
                             for u in ix.units if u.service.name == name)
            text = (f"served from {used.size} pools on {len(providers)} providers "
                    f"({', '.join(providers)}): {parts}; eligible pools per jurisdiction "
                    f"({elig}) after compatibility, exclusivity "
                    f"({svc.tenant_class or 'none'}) and residency{unit_cost}")
        else:
            text = (f"{fmt_usd(cost)} over {used.size} pools ({', '.join(providers)}): "
                    f"{parts}; {n_elig} eligible pools")
        out.append(Reason(workload=name, text=text))
    return out
