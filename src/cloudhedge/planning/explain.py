"""Explanations: why the plan is what it is.

- :func:`hedge_costs`: the extra cost of each policy, by re-solving without it;
- :func:`shadow_prices`: from the LP with integer decisions fixed, what one more
  chip of a pool or one more point of a cap would save;
- :func:`binding`: which capacity, cap, survivability and budget rows are tight;
- :func:`conflicts`: when hard policies force demand to go unmet (or no plan
  exists at all), an elastic re-solve says which constraints must bend and how far;
- :func:`unmet_cause`: for each unmet demand, whether capacity or a policy is why.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cloudhedge.core.errors import Conflict
from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import BindingConstraint, HedgeCost, ShadowPrice
from cloudhedge.planning.build import Block, Model, ModelBuilder
from cloudhedge.planning.decompose import solve_decomposed, use_decomposition
from cloudhedge.planning.index import FleetIndex, FloatArray, PolicySwitches, build_index
from cloudhedge.planning.solve import Solution, SolveOptions, solve
from cloudhedge.planning.warmstart import solve_warm

TIGHT = 1e-6


def fmt_usd(v: float) -> str:
    a = abs(v)
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{v / div:.1f} {suf} USD"
    return f"{v:.0f} USD"


def period_span(ix: FleetIndex, periods: list[int]) -> str:
    if not periods:
        return ""
    h = ix.fleet.horizon
    lo, hi = min(periods), max(periods)
    return h.label(lo) if lo == hi else f"{h.label(lo)}..{h.label(hi)}"


@dataclass(frozen=True)
class PolicyRef:
    id: str
    description: str
    switches: PolicySwitches


def policy_refs(fleet: Fleet) -> list[PolicyRef]:
    """Every policy of the fleet, each with the switches that turn only it off."""
    pol = fleet.policies
    refs: list[PolicyRef] = []
    ncap, nsurv = len(pol.caps), len(pol.survivability)
    for i, cap in enumerate(pol.caps):
        keep = tuple(j for j in range(ncap) if j != i)
        who = f"any {cap.kind}" if cap.name == "*" else f"{cap.kind} {cap.name}"
        refs.append(PolicyRef(cap.id, f"the {cap.max_share:.0%} cap on {who}",
                              PolicySwitches(caps=keep)))
    for i, rule in enumerate(pol.survivability):
        keep = tuple(j for j in range(nsurv) if j != i)
        alphas = ", ".join(f"{k} {v:.0%}" for k, v in sorted(rule.alpha.items()))
        refs.append(PolicyRef(rule.id, f"survivability of the loss of any one {rule.kind} "
                              f"({alphas})", PolicySwitches(survivability=keep)))
    if pol.exclusivity:
        desc = "; ".join(f"{k} -> {', '.join(v)}" for k, v in sorted(pol.exclusivity.items()))
        refs.append(PolicyRef("exclusivity", f"exclusivity ({desc})",
                              PolicySwitches(exclusivity=False)))
    if pol.residency:
        desc = ", ".join(sorted(pol.residency))
        refs.append(PolicyRef("residency", f"residency of {desc} traffic",
                              PolicySwitches(residency=False)))
    if pol.budget is not None:
        refs.append(PolicyRef("budget", "the budget", PolicySwitches(budget=False)))
    return refs


def hedge_costs(fleet: Fleet, objective: float, options: SolveOptions,
                bound: float | None = None, decompose: bool | None = None) -> list[HedgeCost]:
    """Re-solve without each policy in turn: the difference is what the policy costs.

    Both solves stop at the MIP gap, so the difference is known only to within the
    sum of the two gaps (``uncertainty_usd``); the text says so when that matters.
    ``decompose`` is the plan's own choice (``PlanOptions.decompose``): each re-solve
    takes the path the plan took.
    """
    own_gap = objective - bound if bound is not None else 0.0
    out: list[HedgeCost] = []
    for ref in policy_refs(fleet):
        ix = build_index(fleet, ref.switches)
        model = ModelBuilder(ix).build()
        if use_decomposition(model, decompose):  # the path the plan itself took
            _, sol = solve_decomposed(ix, model, options)
        else:
            _, sol = solve_warm(ix, model, options)
        if not sol.has_solution or sol.objective is None:
            out.append(HedgeCost(policy=ref.id, description=ref.description, cost_usd=None,
                                 status=sol.status,
                                 text=f"{ref.description}: re-solve without it ended "
                                      f"{sol.status}"))
            continue
        delta = objective - sol.objective
        other_gap = sol.objective - sol.mip_bound if sol.mip_bound is not None else 0.0
        unc = max(own_gap, 0.0) + max(other_gap, 0.0)
        if delta > max(0.5, unc):
            text = f"{ref.description} costs {fmt_usd(delta)} over the horizon"
        elif unc > 0.5:
            text = (f"{ref.description} costs at most {fmt_usd(max(delta, 0.0) + unc)} "
                    f"(within the solver gap)")
        else:
            text = f"{ref.description} costs nothing in this plan"
        if unc > 0.5 and delta > unc:
            text += f" (± {fmt_usd(unc)} solver gap)"
        out.append(HedgeCost(policy=ref.id, description=ref.description, cost_usd=delta,
                             uncertainty_usd=unc, status=sol.status, text=text))
    return out


def _row_groups(blk: Block) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ident in enumerate(blk.ids):
        groups[ident].append(i)
    return groups


def _cap_words(ident: str) -> str:
    # "cap:provider:*|azure" -> "the cap on provider azure"
    m = re.match(r"cap:(\w+):[^|]*\|(.+)", ident)
    return f"the cap on {m.group(1)} {m.group(2)}" if m else ident


def _surv_words(ident: str) -> str:
    # "survivability:provider|azure|chat/us"
    parts = ident.split("|")
    kind = parts[0].split(":")[1]
    return f"survivability of {parts[2]} after losing {kind} {parts[1]}"


def shadow_prices(ix: FleetIndex, model: Model, lp: Solution, use: FloatArray,
                  limit: int = 12) -> list[ShadowPrice]:
    if lp.row_dual is None:
        return []
    dual = lp.row_dual
    T = ix.T
    out: list[ShadowPrice] = []
    cap = model.rows["capacity"]
    d = np.abs(dual[cap.start:cap.stop]).reshape(len(ix.pools), T)
    per_pool = d.sum(axis=1)
    for p in np.argsort(-per_pool)[:limit]:
        if per_pool[p] <= TIGHT:
            break
        pool = ix.pools[p]
        monthly = per_pool[p] / T
        out.append(ShadowPrice(
            constraint=f"capacity:{pool.name}", kind="capacity", usd=float(per_pool[p]),
            unit="USD per extra chip in every period",
            text=f"one more {pool.accelerator} in {pool.provider}/{pool.region} ({pool.tier}) "
                 f"would save {fmt_usd(monthly)} per period on average "
                 f"({fmt_usd(per_pool[p])} over the horizon)"))
    total = use.sum(axis=0)
    for name, blk in model.rows.items():
        if not name.startswith("cap:"):
            continue
        saving = float((np.abs(dual[blk.start:blk.stop]) * total * 0.01).sum())
        if saving > 0.5:
            out.append(ShadowPrice(
                constraint=blk.ids[0], kind="cap", usd=saving, unit="USD per percentage point",
                text=f"raising {_cap_words(blk.ids[0])} by one point would save "
                     f"{fmt_usd(saving)} over the horizon"))
    for name in ("budget_total", "budget_period"):
        blk2 = model.rows.get(name)
        if blk2 is not None:
            v = float(np.abs(dual[blk2.start:blk2.stop]).sum())
            if v > TIGHT:
                out.append(ShadowPrice(
                    constraint=name, kind="budget", usd=v, unit="USD per USD of budget",
                    text=f"each extra dollar of budget would save {v:.2f} USD of penalties"))
    out.sort(key=lambda s: -s.usd)
    return out


def binding(ix: FleetIndex, model: Model, x: FloatArray,
            dual: FloatArray | None) -> list[BindingConstraint]:
    """Rows at their bound (and with a non-zero dual when duals are known)."""
    act = model.A @ x
    out: list[BindingConstraint] = []
    for name, blk in model.rows.items():
        if not (name.startswith("cap:") or name in ("survivability", "capacity",
                                                     "budget_total", "budget_period",
                                                     "commitment")):
            continue
        a = act[blk.start:blk.stop]
        lo, hi = model.row_lo[blk.start:blk.stop], model.row_hi[blk.start:blk.stop]
        scale = np.maximum(np.abs(np.where(np.isfinite(hi), hi, lo)), 1.0)
        tight = (np.abs(a - np.where(blk.sense < 0, hi, lo)) <= 1e-6 * scale)
        if dual is not None:
            tight &= np.abs(dual[blk.start:blk.stop]) > TIGHT
        for ident, rows in _row_groups(blk).items():
            periods = [int(blk.period[i]) for i in rows if tight[i]]
            if not periods:
                continue
            span = period_span(ix, periods)
            if name == "capacity":
                text = f"pool {ident} is full in {len(periods)} period(s) ({span})"
            elif name == "commitment":
                text = f"contract {ident} is fully used in {len(periods)} period(s) ({span})"
            elif name == "survivability":
                text = f"{_surv_words(ident)} is binding in {span}"
            elif name.startswith("cap:"):
                text = f"{_cap_words(ident)} is binding in {span}"
            else:
                text = f"the budget is binding ({span})"
            out.append(BindingConstraint(constraint=f"{name}:{ident}" if name in (
                "capacity", "commitment") else ident, periods=periods, text=text))
    return out


def conflicts(fleet: Fleet, switches: PolicySwitches, options: SolveOptions,
              main_penalty: float | None) -> list[Conflict]:
    """Which hard policies must bend, and how far, for the demand capacity allows.

    Phase 1 makes every policy row elastic and minimises penalties alone: the least
    unmet demand possible if policies could bend. If that is (materially) less than
    the plan's own penalty, or the plan has no solution, phase 2 keeps penalties at
    that level and minimises the scaled slack: the rows left with slack conflict.
    """
    ix = build_index(fleet, switches)
    model = ModelBuilder(ix, elastic=True).build()
    p1 = solve(model, options, cost=model.penalty)
    if not p1.has_solution or p1.objective is None:
        return [Conflict("model", f"even with every policy relaxed the model ended "
                         f"{p1.status}", 0.0, "")]
    best = float(model.penalty @ p1.x)
    if main_penalty is not None and main_penalty <= best * (1 + 1e-6) + 1.0:
        return []
    slack = model.cols["slack"]
    weights = np.zeros(model.A.shape[1])
    scales = np.concatenate([b.scale for b in model.rows.values() if b.elastic]) \
        if slack.size else np.zeros(0)
    weights[slack.start:slack.stop] = 1.0 / scales
    A = sp.vstack([model.A, sp.csr_matrix(model.penalty[None, :])]).tocsc()
    m2 = Model(A=A, cost=model.cost, penalty=model.penalty, C=model.C,
               fixed_per_period=model.fixed_per_period, col_lo=model.col_lo,
               col_hi=model.col_hi, integer=model.integer,
               row_lo=np.append(model.row_lo, -np.inf),
               row_hi=np.append(model.row_hi, best * (1 + 1e-6) + 1.0),
               cols=model.cols, rows=model.rows, U=model.U)
    m2.fixed_per_period = np.zeros_like(model.fixed_per_period)
    p2 = solve(m2, options, cost=weights)
    x = p2.x if p2.has_solution else p1.x
    return _read_conflicts(ix, model, x)


def _read_conflicts(ix: FleetIndex, model: Model, x: FloatArray) -> list[Conflict]:
    slack = model.cols["slack"]
    s = x[slack.start:slack.stop]
    use_total = (model.U @ x).reshape(len(ix.pools), ix.T).sum(axis=0)
    out: list[Conflict] = []
    offset = 0
    for name, blk in model.rows.items():
        if not blk.elastic:
            continue
        vals = s[offset:offset + blk.size]
        offset += blk.size
        for ident, rows in _row_groups(blk).items():
            v = vals[rows]
            if v.max(initial=0.0) <= 1e-6 * max(1.0, float(blk.scale[rows].max())):
                continue
            periods = [int(blk.period[i]) for i, val in zip(rows, v, strict=True)
                       if val > 1e-9]
            span = period_span(ix, periods)
            worst = int(np.argmax(v))
            rel = float(v[worst] / blk.scale[rows][worst])
            if name.startswith("cap:"):
                t = int(blk.period[rows[worst]])
                share = float(v[worst] / max(use_total[t], 1e-9))
                text = (f"{_cap_words(ident)} must allow {v[worst]:,.0f} more chips "
                        f"({share:.1%} of all chips in use, {span}) to serve the demand "
                        f"that capacity allows")
                out.append(Conflict(ident, text, share, "share of chips"))
            elif name == "survivability":
                text = (f"{_surv_words(ident)} falls {rel:.1%} short of its required share "
                        f"({span}): the eligible pools do not span enough failure domains "
                        f"(check exclusivity, residency and compatible accelerators)")
                out.append(Conflict(ident, text, rel, "share of demand"))
            else:
                total = float(v.sum())
                text = f"the budget must grow by {fmt_usd(total)} ({span})"
                out.append(Conflict(ident, text, total, "USD"))
    if not out:
        out.append(Conflict("model", "hard policies force demand to go unmet but no single "
                            "policy row bends; check windows and capacity", 0.0, ""))
    return out


__all__ = ["PolicyRef", "binding", "conflicts", "fmt_usd", "hedge_costs", "period_span",
           "policy_refs", "shadow_prices"]
