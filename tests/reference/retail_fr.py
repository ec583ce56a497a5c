#!/usr/bin/env python3
"""An independent implementation of shared/spec/retail-fr.md, written from the
spec's text alone, used to cross-check the engine on generated multi-night
ledgers (tests/reference.rs). Standard library only.

    retail_fr.py gen --seed S --dir D     write a random scenario and the
                                          decisions the spec expects per night
"""
import csv, datetime as dt, os, random, sys
from decimal import Decimal

GRACE = 3
CURE = Decimal("10.00")
GAP = 7
LEVELS = {
    1: ("reminder", lambda dpd, od: dpd >= 5),
    2: ("second_notice", lambda dpd, od: dpd >= 15),
    3: ("call", lambda dpd, od: dpd >= 30),
    4: ("formal_demand", lambda dpd, od: dpd >= 45),
    5: ("agency", lambda dpd, od: dpd >= 60 and od >= Decimal("100.00")),
    6: ("legal", lambda dpd, od: dpd >= 90 and od >= Decimal("1500.00")),
}
HOLD_ORDER = ["insolvency", "deceased", "dispute", "payment_plan", "promise_to_pay"]


def day(s):
    return dt.date.fromisoformat(s) if s else None


def hold_on(events, D):
    evs = [e for e in events if day(e["date"]) <= D]

    def opened_not_closed(start, end):
        starts = [day(e["date"]) for e in evs if e["kind"] == start]
        ends = [day(e["date"]) for e in evs if e["kind"] == end]
        return any(not any(x > s for x in ends) for s in starts)

    def until_ok(kind):
        return any(e["kind"] == kind and e["until"] and day(e["until"]) >= D for e in evs)

    active = {
        "insolvency": opened_not_closed("insolvency", "insolvency_closed"),
        "deceased": any(e["kind"] == "deceased" for e in evs),
        "dispute": opened_not_closed("dispute", "dispute_resolved"),
        "payment_plan": until_ok("payment_plan"),
        "promise_to_pay": until_ok("promise_to_pay"),
    }
    for h in HOLD_ORDER:
        if active[h]:
            return h
    return ""


def night(D, ledger, debtors, events, state):
    """state: {(debtor, currency): (level, last_escalated_on or None)}"""
    accts = {}
    for r in ledger:
        k = (r["debtor_id"], r["currency"])
        a = accts.setdefault(k, {"overdue": Decimal(0), "max_dpd": 0, "has_open": False})
        op = Decimal(r["open_amount"])
        if op > 0:
            a["has_open"] = True
            dpd = (D - day(r["due_on"])).days
            if dpd > GRACE:
                a["overdue"] += op
                a["max_dpd"] = max(a["max_dpd"], dpd)
    keys = {k for k, a in accts.items() if a["has_open"]}
    keys |= {k for k, (lvl, _) in state.items() if lvl > 0}
    rows, new_state = [], {}
    for k in sorted(keys, key=lambda k: (k[0].encode(), k[1].encode())):
        a = accts.get(k, {"overdue": Decimal(0), "max_dpd": 0})
        deb = debtors[k[0]]
        evs = events.get(k[0], [])
        dnc = any(e["kind"] == "do_not_contact" and day(e["date"]) <= D for e in evs)
        if deb["kind"] == "business":
            seg = "business"
        elif a["overdue"] >= Decimal("5000.00"):
            seg = "high_balance"
        else:
            seg = "retail"
        lvl, last = state.get(k, (0, None))
        before = lvl
        actions, held = [], ""
        if a["overdue"] < CURE:
            lvl, last = 0, None
        else:
            held = hold_on(evs, D)
            if not held and lvl < 6:
                nxt = lvl + 1
                if LEVELS[nxt][1](a["max_dpd"], a["overdue"]) and (last is None or (D - last).days >= GAP):
                    lvl, last = nxt, D
                    wanted = {
                        1: ["email:reminder"] + (["call:reminder"] if seg == "high_balance" else []),
                        2: ["letter:second_notice", "sms:second_notice"],
                        3: ["call:collect"],
                        4: ["letter:formal_demand"],
                        5: ["agency:placement"],
                        6: ["legal:referral"],
                    }[nxt]
                    consent = lambda c: (c or "").strip().lower() not in ("false", "no", "0", "n")
                    for act in wanted:
                        ch, t = act.split(":")
                        if ch == "email" and (not deb["email"] or not consent(deb.get("consent_email")) or dnc):
                            act = "letter:" + t
                        elif ch == "sms" and (not deb["phone"] or not consent(deb.get("consent_sms")) or dnc):
                            continue
                        elif ch == "call" and (not deb["phone"] or dnc):
                            continue
                        actions.append(act)
        rows.append([k[0], k[1], seg, str(before), str(lvl), ";".join(actions), held])
        if lvl > 0:
            new_state[k] = (lvl, last)
    return rows, new_state


def write(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def gen(seed, out):
    rnd = random.Random(seed)
    n = rnd.randint(20, 60)
    debtors = {}
    for i in range(n):
        did = f"D{i:04d}"
        debtors[did] = {
            "debtor_id": did, "name": f"Debtor {i}", "kind": "business" if rnd.random() < 0.15 else "person",
            "language": rnd.choice(["fr", "en", "zh"]), "country": "FR",
            "email": "" if rnd.random() < 0.15 else f"d{i}@example.fr",
            "phone": "" if rnd.random() < 0.15 else f"+3361234{i:04d}",
            "address_line1": "1 rue X", "address_line2": "", "postal_code": "75001", "city": "Paris",
            "timezone": "", "score": "",
            "consent_email": rnd.choice(["", "", "", "true", "false", "no"]),
            "consent_sms": rnd.choice(["", "", "", "true", "false", "0"]),
        }
    H = list(next(iter(debtors.values())).keys())
    write(os.path.join(out, "debtors.csv"), H, [list(d.values()) for d in debtors.values()])
    start = dt.date(2026, 1, 1) + dt.timedelta(days=rnd.randint(0, 200))
    nights, D = [], start
    for _ in range(rnd.randint(6, 14)):
        nights.append(D)
        D += dt.timedelta(days=rnd.choice([1, 2, 3, 5, 6, 7, 7, 8, 10, 14, 30]))
    items = []
    for did in debtors:
        for j in range(rnd.randint(1, 4)):
            cur = "EUR" if rnd.random() < 0.85 else rnd.choice(["USD", "GBP"])
            amt = Decimal(rnd.choice([rnd.randint(1, 2000), rnd.randint(1, 800000), rnd.choice([999, 1000, 9999, 10000, 150000, 149999, 500000, 499999])])) / 100
            due = start + dt.timedelta(days=rnd.randint(-150, 40))
            items.append({"item_id": f"{did}-{j}", "debtor_id": did, "currency": cur, "amount": amt,
                          "open": amt, "issued_on": due - dt.timedelta(days=30), "due_on": due})
    kinds = ["promise_to_pay", "payment_plan", "dispute", "dispute_resolved", "insolvency",
             "insolvency_closed", "do_not_contact", "contact_outcome", "deceased"]
    events = []
    for did in debtors:
        for _ in range(rnd.choice([0, 0, 0, 1, 2, 3])):
            d = nights[0] + dt.timedelta(days=rnd.randint(-20, (nights[-1] - nights[0]).days + 5))
            k = rnd.choice(kinds)
            until = ""
            if k in ("promise_to_pay", "payment_plan") and rnd.random() < 0.9:
                until = (d + dt.timedelta(days=rnd.randint(0, 30))).isoformat()
            events.append({"debtor_id": did, "date": d.isoformat(), "kind": k, "until": until, "amount": "", "note": ""})
    write(os.path.join(out, "events.csv"), ["debtor_id", "date", "kind", "until", "amount", "note"],
          [list(e.values()) for e in events])
    by_debtor = {}
    for e in events:
        by_debtor.setdefault(e["debtor_id"], []).append(e)
    state = {}
    for D in nights:
        # Payments between nights: some items are paid down, some in full.
        for it in items:
            r = rnd.random()
            if r < 0.05:
                it["open"] = Decimal(0)
            elif r < 0.10:
                it["open"] = (it["open"] * Decimal(rnd.randint(0, 100)) / 100).quantize(Decimal("0.01"))
        ledger = [{"item_id": it["item_id"], "debtor_id": it["debtor_id"], "currency": it["currency"],
                   "amount": f"{it['amount']:.2f}", "open_amount": f"{it['open']:.2f}",
                   "issued_on": it["issued_on"].isoformat(), "due_on": it["due_on"].isoformat()} for it in items]
        nd = os.path.join(out, "nights", D.isoformat())
        write(os.path.join(nd, "ledger.csv"), list(ledger[0].keys()), [list(r.values()) for r in ledger])
        rows, state = night(D, ledger, debtors, by_debtor, state)
        write(os.path.join(nd, "expected.csv"),
              ["debtor_id", "currency", "segment", "level_before", "level_after", "actions", "held_by"], rows)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "gen" and args[1] == "--seed" and args[3] == "--dir":
        gen(int(args[2]), args[4])
    else:
        sys.exit(__doc__)
