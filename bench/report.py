"""The result file's targets and its Markdown rendering."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def _target(name: str, value: Any, limit: float, *, at_most: bool, unit: str = "") -> JSON:
    if not isinstance(value, int | float):
        return {"target": name, "value": value, "limit": limit, "met": None}
    met = value <= limit if at_most else value >= limit
    return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met}


def evaluate_targets(result: JSON) -> list[JSON]:
    s = result["scenarios"]
    ratios = s["proxy"]["ratios"]
    high = ratios["connections_high"]
    low = ratios["connections_low"]
    targets = [
        _target(
            f"proxy rps at {high} conns / nginx's",
            ratios["monitor_vs_nginx_rps"],
            0.12,
            at_most=False,
            unit="x",
        ),
        _target(
            f"proxy added p50 at {low} conn vs direct",
            ratios["added_p50_ms_vs_direct"],
            0.25,
            at_most=True,
            unit="ms",
        ),
        _target(
            "proxy p99 scraping / quiet",
            s["isolation"].get("p99_ratio"),
            2.0,
            at_most=True,
            unit="x",
        ),
    ]
    polls = s["poll_scaling"]["rows"]
    if polls:
        top = polls[-1]
        targets.append(
            _target(
                f"poll cycle / ideal, {top['orgs']} orgs", top["ratio"], 1.2, at_most=True, unit="x"
            )
        )
        targets.append(
            _target(
                f"CPU per poll, {top['orgs']} orgs",
                top["cpu_ms_per_poll"],
                0.3,
                at_most=True,
                unit="ms",
            )
        )
    scrapes = s["scrape_cost"]["rows"]
    if scrapes:
        top = scrapes[-1]
        targets.append(
            _target(
                f"/metrics time, {top['orgs']} orgs", top["text_ms"], 300, at_most=True, unit="ms"
            )
        )
    memory = s["memory"]["rows"]
    if memory:
        top = memory[-1]
        targets.append(
            _target(f"RSS, {top['orgs']} orgs polled", top["rss_mb"], 300, at_most=True, unit="MB")
        )
    return targets


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines


def markdown(result: JSON) -> str:
    s = result["scenarios"]
    m = result["machine"]
    out = [
        f"## monitor benchmark ({result['mode']}, {result['started']}, {result['duration_s']} s)",
        "",
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}; "
            f"{m['nginx'] or 'no nginx'}; {m['wrk'] or 'no wrk'}."
        ),
        "",
        (
            f"### 1. Proxy throughput and latency ({s['proxy']['tool']}, "
            f"{s['proxy']['seconds']} s each)"
        ),
        "",
    ]
    rows = []
    for row in s["proxy"]["rows"]:
        if "skipped" in row:
            rows.append([row["target"], "-", row["skipped"], "-", "-", "-"])
        else:
            rows.append(
                [
                    row["target"],
                    row["connections"],
                    row["rps"],
                    row["p50_ms"],
                    row["p99_ms"],
                    row["errors"],
                ]
            )
    out += _table(["target", "conns", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    r = s["proxy"]["ratios"]
    out += [
        "",
        (
            f"monitor/nginx req/s at {r['connections_high']} conns: "
            f"{_fmt(r['monitor_vs_nginx_rps'])}; "
            f"monitor/direct: {_fmt(r['monitor_vs_direct_rps'])}; "
            f"added p50 at {r['connections_low']} conn: {_fmt(r['added_p50_ms_vs_direct'])} ms "
            f"over direct, {_fmt(r['added_p50_ms_vs_nginx'])} ms over nginx."
        ),
        "",
    ]
    iso = s["isolation"]
    out += ["### 2. Isolation: proxy while /metrics is scraped every second", ""]
    if "skipped" in iso:
        out += [iso["skipped"], ""]
    else:
        out += _table(
            ["orgs", "conns", "state", "req/s", "p50 ms", "p99 ms"],
            [
                [
                    iso["orgs"],
                    iso["connections"],
                    state,
                    iso[key]["rps"],
                    iso[key]["p50_ms"],
                    iso[key]["p99_ms"],
                ]
                for state, key in (("no scraping", "quiet"), ("scraping", "scraping"))
            ],
        )
        out += [
            "",
            (
                f"p99 ratio {_fmt(iso['p99_ratio'])}; {iso['scrapes']} scrapes, median "
                f"{_fmt(iso['scrape_ms_median'])} ms."
            ),
            "",
        ]
    polls = s["poll_scaling"]
    out += [
        (
            f"### 3. Poll scaling ({polls['latency_s'] * 1000:g} ms upstream latency, "
            f"concurrency {polls['concurrency']})"
        ),
        "",
    ]
    out += _table(
        ["orgs", "start to 1st poll s", "cycle s", "ideal s", "ratio", "CPU s", "CPU ms/poll"],
        [
            [
                p["orgs"],
                p["start_to_first_poll_s"],
                p["cycle_s"],
                p["ideal_s"],
                p["ratio"],
                p["cpu_s"],
                p["cpu_ms_per_poll"],
            ]
            for p in polls["rows"]
        ],
    )
    out += ["", "### 4. Scrape cost (one /metrics)", ""]
    out += _table(
        ["orgs", "samples", "text ms", "text bytes", "as Prometheus asks ms", "gzip bytes"],
        [
            [
                p["orgs"],
                p["samples"],
                p["text_ms"],
                p["text_bytes"],
                p["prometheus_ms"],
                p["prometheus_bytes"],
            ]
            for p in s["scrape_cost"]["rows"]
        ],
    )
    out += ["", "### 5. Memory (RSS)", ""]
    out += _table(
        ["orgs", "RSS MB after polls", "RSS MB after scrapes"],
        [[p["orgs"], p["rss_mb"], p.get("rss_after_scrapes_mb")] for p in s["memory"]["rows"]],
    )
    out += ["", "### Targets", ""]
    out += _table(
        ["target", "value", "limit", "met"],
        [
            [
                t["target"],
                f"{_fmt(t['value'])} {t.get('unit', '')}".strip(),
                f"{_fmt(t['limit'])} {t.get('unit', '')}".strip(),
                {True: "yes", False: "**no**", None: "n/a"}[t["met"]],
            ]
            for t in result["targets"]
        ],
    )
    return "\n".join(out)
