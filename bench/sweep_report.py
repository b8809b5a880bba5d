"""The engine sweep's markdown: every variant against the issue's target ratios, then the service with the best."""

from __future__ import annotations

# The issue's targets (issue 18), ratios from one run on one card.
LIMIT_RATIO_TARGET = 2.0  # one job's ms/token at most 2x the bandwidth limit's
SCALING_TARGET = 10.0  # 32 concurrent jobs' tokens/s at least 10x one job's
SERVICE_TARGET = 0.9  # the service at least 0.9 of the raw engine
GREEDY_TARGET = 16  # greedy tokens identical to plain generate for at least the first 16 of every prompt


def _rate(raw: list[dict], concurrent: int) -> float | None:
    return next((row["tokens_per_s"] for row in raw if row["concurrent"] == concurrent), None)


def greedy_summary(differences: list[int | None] | None) -> str:
    if differences is None:
        return "not measured"
    identical = sum(difference is None for difference in differences)
    if identical == len(differences):
        return f"identical ({identical}/{len(differences)})"
    first = min(difference for difference in differences if difference is not None)
    met = "met" if first >= GREEDY_TARGET else "NOT met"
    return f"first differs at {first} ({identical}/{len(differences)} identical; {met})"


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def variant_row(name: str, figures: dict, limit_ms: float) -> str:
    """One table row; a refused, failed or timed-out variant says so in its status."""
    raw = figures.get("raw", [])
    one = next((row for row in raw if row["concurrent"] == 1), None)
    one_ms = one["ms_per_token_p50"] if one else None
    rate_1, rate_8, rate_32 = (_rate(raw, c) for c in (1, 8, 32))
    scaling = rate_32 / rate_1 if rate_1 and rate_32 else None
    status = figures.get("refused") or figures.get("error") or ("timed out" if figures.get("timed_out") else "ok")
    if not figures.get("done") and status == "ok":
        status = "incomplete"
    vram = figures.get("peak_vram_allocated_gb")
    return (
        f"| {name} | {figures.get('resolved', '-')} | {_fmt(figures.get('warmup_s'), '.2f')} "
        f"| {_fmt(figures.get('first_wave_s'), '.2f')} | {figures.get('graphs', '-')} "
        f"| {_fmt(one_ms, '.2f')} | {_fmt(one_ms / limit_ms if one_ms else None, '.2f')} "
        f"| {_fmt(rate_1)} | {_fmt(rate_8)} | {_fmt(rate_32)} | {_fmt(scaling, '.2f')} "
        f"| {'-' if rate_8 is None or rate_32 is None else ('yes' if rate_32 >= rate_8 else 'NO')} "
        f"| {greedy_summary(figures.get('greedy_first_difference'))} | {_fmt(vram, '.2f')} | {status} |"
    )


def service_rows(service: list[dict], raw: list[dict]) -> list[str]:
    rows = []
    for row in service:
        raw_rate = _rate(raw, row["clients"])
        share = row["tokens_per_s"] / raw_rate if raw_rate else None
        verdict = "" if share is None else (" met" if share >= SERVICE_TARGET else " NOT met")
        rows.append(
            f"| {row['clients']} | {row['tokens_per_s']:.1f} | {_fmt(raw_rate)} | {_fmt(share, '.3f')}{verdict} "
            f"| {row['ms_per_token_p50']:.2f} | {row['ttft_p50_ms']:.1f} | {row['batch_seen']} |"
        )
    return rows


def report(sweep: dict) -> str:
    """The sweep's entry for bench/RESULTS.md."""
    bandwidth, model = sweep["bandwidth"], sweep["model"]
    limit_ms = 1000 * model["weight_bytes"] / bandwidth["bytes_per_s"]
    baseline = sweep.get("baseline", {}).get("baseline")
    lines = [
        f"## engine sweep {sweep['date']} on {sweep['machine']}",
        "",
        sweep["label"],
        "",
        f"torch {bandwidth['torch']}, transformers {sweep['transformers']}, Python {sweep['python']}; model "
        f"{model['description']} ({model['weight_bytes'] / 1e9:.2f} GB of weights); MAX_BATCH_SIZE="
        f"{sweep['max_batch_size']}; {sweep['new_tokens']}-token sampled jobs (ignore_eos). Bandwidth limit "
        f"{limit_ms:.3f} ms/token (weights / {bandwidth['bytes_per_s'] / 1e12:.3f} TB/s measured device copy). "
        f"Seed-style baseline (one plain `generate` at a time, own process): "
        + (
            f"{baseline['tokens_per_s']:.1f} tokens/s, {baseline['ms_per_token_p50']:.2f} ms/token."
            if baseline
            else "not measured."
        ),
        "",
        "| variant | as transformers resolved it | warm-up s | first wave s | graphs | 1 job ms/token "
        f"| x limit (<= {LIMIT_RATIO_TARGET:g}) | tokens/s 1 | tokens/s 8 | tokens/s 32 "
        f"| 32 vs 1 (>= {SCALING_TARGET:g}) | 32 >= 8 | greedy vs plain generate (>= {GREEDY_TARGET}) "
        "| peak VRAM GB | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(variant_row(name, figures, limit_ms) for name, figures in sweep["variants"].items()),
        "",
    ]
    best = sweep.get("best")
    if best is None:
        lines.append("- No variant finished: the service was not run.")
    else:
        lines += [
            f"Service (`make run`'s processes) with the best variant, {best} ({sweep['service_note']}):",
            "",
            f"| concurrent | service tokens/s | raw engine tokens/s | service / raw (>= {SERVICE_TARGET}) "
            "| ms/token p50 | TTFT p50 ms | batch seen |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *service_rows(sweep.get("service", []), sweep["variants"][best].get("raw", [])),
        ]
    return "\n".join(lines) + "\n"
