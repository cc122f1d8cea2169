"""The printed table."""

from __future__ import annotations

CHAIN_TARGET, DECISIONS_TARGET = 10.0, 99.5  # issue 13, goal 2


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or "<" + ">" * (len(header) - 1)
    out = []
    for n, r in enumerate(cells):
        out.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "BELOW TARGET")


def render(results: dict) -> str:
    lines: list[str] = []
    c = results["corpus"]
    env = results["environment"]
    lines.append(
        f"corpus: {c['docs']:,} docs in {c['shards']} shards of {c['shard_docs']} "
        f"({c['text_bytes'] / 1e6:.1f} MB of text, mean {c['mean_doc_bytes']:,} B/doc), seed {c['seed']}"
    )
    lines.append("kinds: " + ", ".join(f"{k} {v}" for k, v in c["kinds"].items()))
    lines.append(
        f"machine: {env['cpus']} CPUs, load {env['loadavg_at_start']}; python {env['python']}, datatrove {env['datatrove']}"
    )

    if "stages" in results:
        s = results["stages"]
        lines += ["", "1. docs/s per stage: run_pipeline on the corpus, all stages (pii on)"]
        rows = [
            [r["stage"], r["docs_in"], r["docs_out"], r["stage_s"], r["docs_per_s"], r["wall_s"], r["docs_per_s_wall"]]
            for r in s["stages"]
        ]
        rows.append(["(prepare + finalize)", None, None, None, None, round(s["prepare_s"] + s["finalize_s"], 3), None])
        rows.append(["whole pipeline", s["docs_in"], s["docs_out"], None, None, s["total_s"], s["docs_per_s_total"]])
        lines += _table(["stage", "docs_in", "docs_out", "stage_s", "docs/s", "wall_s", "docs/s wall"], rows)
        lines.append("   stage_s: the runner's per-stage `seconds` (funnel); wall_s adds planning/signature steps")

    if "chain" in results:
        ch = results["chain"]
        dt = ch["datatrove"]
        lines += [
            "",
            "2. heuristic chain vs datatrove (same shards; GopherRepetition, GopherQuality, C4, FineWeb; default params)",
        ]
        rows = [
            ["datatrove LocalPipelineExecutor", dt["docs"], dt["seconds"], dt["docs_per_s"], "1.00", dt["kept"], "(reference)"]
        ]
        labels = {"tokens": "ours, alpha_words_rule=tokens", "words": "ours, alpha_words_rule=words (default)"}
        for rule, o in ch["ours"].items():
            rows.append(
                [
                    labels[rule],
                    o["docs"],
                    o["seconds"],
                    o["docs_per_s"],
                    _fmt(o["ratio_vs_datatrove"], 2),
                    o["kept"],
                    _fmt(o["identical_pct"], 2),
                ]
            )
        lines += _table(["implementation", "docs", "seconds", "docs/s", "ratio", "kept", "identical %"], rows)
        t = ch["ours"].get("tokens")
        if t:
            lines.append(
                f"   apples-to-apples (tokens): ratio {_fmt(t['ratio_vs_datatrove'], 2)} "
                f"[target >= {CHAIN_TARGET}: {_verdict(t['ratio_vs_datatrove'] and t['ratio_vs_datatrove'] >= CHAIN_TARGET)}], "
                f"identical decisions {_fmt(t['identical_pct'], 2)}% "
                f"[target >= {DECISIONS_TARGET}%: {_verdict(t['identical_pct'] is not None and t['identical_pct'] >= DECISIONS_TARGET)}]"
            )
            lines.append(
                f"   disagreements (tokens): kept only by ours {t['kept_by_ours_only']}, only by datatrove "
                f"{t['kept_by_datatrove_only']}; texts changed by ingest {t.get('ingest_changed_texts')}"
            )
        w = ch["ours"].get("words")
        if w:
            lines.append(
                f"   words rule keeps {w['kept_by_ours_only']} documents datatrove drops "
                f"(the alpha-words rule counted on words only, by design)"
            )
        for rule, o in ch["ours"].items():
            diffs = o.get("reason_count_differences") or {}
            lines.append(
                f"   drop reasons vs datatrove ({rule}): "
                + ("identical counts" if not diffs else ", ".join(f"{r} {a} vs {b}" for r, (a, b) in diffs.items()))
            )

    if "memory" in results:
        m = results["memory"]
        lines += ["", "3. peak memory: whole pipeline in a child process (peak RSS from wait4; VmHWM as a cross-check)"]
        rows = [
            [
                k,
                m[k]["docs"],
                m[k]["shards"],
                m[k]["rss_before_run_mb"],
                m[k]["peak_rss_mb"],
                m[k]["vmhwm_mb"],
                m[k]["pipeline_s"],
            ]
            for k in ("1x", "4x")
        ]
        lines += _table(["corpus", "docs", "shards", "RSS before run MB", "peak RSS MB", "VmHWM MB", "seconds"], rows)
        lines.append(
            f"   RSS_4x / RSS_1x = {_fmt(m['rss_ratio_4x_1x'], 2)} (flat memory: near 1); "
            f"growth over the pre-run RSS 4x/1x = {_fmt(m['run_growth_ratio_4x_1x'], 2)}; time 4x/1x = {_fmt(m['time_ratio_4x_1x'], 2)}"
        )

    lines.append(f"\nbenchmark took {results['benchmark_seconds']} s")
    if "scoring" in results:
        sc = results["scoring"]
        lines += ["", "4. scoring stage vs a bare fastText predict loop (same texts, same process)"]
        lines += _table(
            ["implementation", "docs", "seconds", "docs/s", "ratio"],
            [
                ["bare model.predict loop", sc["docs"], sc["bare_predict_s"], sc["bare_docs_per_s"], "1.00"],
                [
                    "our scorer (preprocess, predict, label prob.)",
                    sc["docs"],
                    sc["scorer_s"],
                    sc["scorer_docs_per_s"],
                    sc["ratio"],
                ],
                [
                    "whole score stage (+ Parquet I/O, threshold)",
                    sc["docs"],
                    sc["stage_s"],
                    sc["stage_docs_per_s"],
                    sc["stage_ratio"],
                ],
            ],
        )
        lines.append(f"   ratio {sc['ratio']} [target >= {sc['target']}: {_verdict(sc['ratio'] >= sc['target'])}]")

    if "losses" in results:
        lo = results["losses"]
        lines += ["", "5. loss throughput, vLLM vs transformers (prompt log-probs, same documents)"]
        if "skipped" in lo:
            lines.append(f"   skipped: {lo['skipped']}")
        else:
            lines += _table(
                ["engine", "docs", "tokens", "seconds", "tokens/s"],
                [[e, lo["docs"], lo[e]["tokens"], lo[e]["seconds"], lo[e]["tokens_per_s"]] for e in ("vllm", "transformers")],
            )
            lines.append(f"   vLLM / transformers = {lo['ratio_vllm_over_transformers']}")

    if "rewrite" in results:
        rw = results["rewrite"]
        lines += ["", "6. rewrite stage vs raw vllm.LLM.generate (same prompts, sampling parameters and seeds)"]
        if "skipped" in rw:
            lines.append(f"   skipped: {rw['skipped']}")
        else:
            lines += _table(
                ["side", "requests", "tokens out", "seconds", "tokens/s"],
                [
                    ["raw LLM.generate", rw["requests"], rw["raw"]["tokens"], rw["raw"]["seconds"], rw["raw"]["tokens_per_s"]],
                    [
                        "rewrite stage (plan, generate, gates, write)",
                        rw["requests"],
                        rw["stage"]["tokens"],
                        rw["stage"]["seconds"],
                        rw["stage"]["tokens_per_s"],
                    ],
                ],
            )
            lines.append(f"   ratio {rw['ratio']} [target >= {rw['target']}: {_verdict(rw['ratio'] >= rw['target'])}]")
            lines.append(
                f"   engine start-up {rw['engine_start_s']} s; gates: {rw['accepted']} accepted, {rw['rejected']} rejected "
                f"{rw['reject_reasons']}; {rw['rejected_token_share']:.0%} of generated tokens are in rejected records"
            )

    if "mix" in results:
        lines += _mixture_lines(results["mix"])

    if "gates" in results:
        lines += _gate_lines(results["gates"])

    if "languages" in results:
        lines += _language_lines(results["languages"])

    if "toxicity" in results:
        t = results["toxicity"]
        lines += [
            "",
            f"10. toxicity word match, {t['texts']:,} real texts ({t['characters']:,} characters), English list",
            f"   regex {t['regex_chars_per_s']:,} chars/s, automaton {t['automaton_chars_per_s']:,} chars/s: "
            f"{t['speedup']}x; texts flagged {t['texts_flagged']}, texts where they differ {t['texts_that_differ']} "
            f"[{_verdict(t['texts_that_differ'] == 0)}]",
        ]

    if "scale" in results:
        sc, ov = results["scale"]["scaling"], results["scale"]["prefect_overhead"]
        one, two = sc["workers"]["1"], sc["workers"]["2"]
        lines += [
            "",
            f"11. scale-out: the whole flow on a local Dask cluster, {one['docs_in']:,} documents in {sc['shards']} shards "
            "(stages' wall time, driver's view)",
            f"   1 worker {one['stages_s']} s, 2 workers {two['stages_s']} s: ratio {sc['ratio']} (target >= {sc['target']}) "
            f"[{_verdict(sc['ratio'] >= sc['target'])}]; agreement: {sc['agreement']['shards_compared']} curated/rejected shards, "
            f"identical {sc['agreement']['identical']}",
            f"   Prefect overhead: ingest alone over {ov['shards']} shards, serial {ov['serial_s']} s, flow {ov['flow_s']} s: "
            f"{ov['overhead_ms_per_task']} ms per task",
        ]

    if "minhash" in results:
        lines += _minhash_lines(results["minhash"])

    if "plan" in results:
        lines += _plan_lines(results["plan"])

    if "whole" in results:
        w = results["whole"]
        lines += [
            "",
            f"14. whole run on {w['cores']} cores: datatrove's executor (4 filters + MinHash signatures) vs our curation flow with "
            "its default worker processes (ingest, exact and near dedup, the same filters)",
        ]
        for r in w["runs"]:
            lines += [
                f"   {r['docs']:,} documents in {r['shards']} shards: datatrove {r['datatrove_s']} s, ours {r['ours_s']} s: "
                f"{r['ratio']}x; ours peak RSS {r['ours_peak_rss_mb']} MB (driver + workers; Prefect server {r['server_peak_rss_mb']} MB)",
                f"      ours per stage (s, summed over shards): {r['ours_stages_s']}",
                f"      ours per phase (wall s): {r['ours_phases_wall_s']}",
                f"      datatrove per step (s, summed over tasks): {r['datatrove_steps_s']}",
            ]
        lines += [
            f"   ratio at {w['runs'][-1]['docs']:,} documents {w['ratio']}x (target >= {w['target']}) "
            f"[{_verdict(w['ratio'] >= w['target'])}]; memory {w['runs'][-1]['docs']:,} vs {w['runs'][0]['docs']:,} documents "
            f"{w['memory_ratio']}x (target <= {w['memory_target']}) [{_verdict(w['memory_ratio'] <= w['memory_target'])}]",
        ]

    return "\n".join(lines)


def _minhash_lines(m: dict) -> list[str]:
    a, ours, theirs = m["agreement"], m["agreement"]["ours"], m["agreement"]["datatrove"]
    below = [k for k in ours if k.startswith("candidates_below_")][0]
    false = [k for k in ours if k.startswith("false_candidates_below_")][0]
    fewer_false = ours[false] <= theirs[false]
    return [
        "",
        f"12. MinHash signatures per core, {m['docs']:,} documents (read, sign, write; one process each)",
        f"   datatrove {m['datatrove_docs_per_s']:,} docs/s, ours {m['ours_docs_per_s']:,} docs/s: {m['ratio']}x "
        f"(target >= 10) [{_verdict(m['ratio'] >= 10)}]",
        f"   agreement over {a['texts']:,} texts with {a['planted_pairs']} planted copies at 5-gram Jaccard >= 0.8: "
        f"recall ours {ours['recall']} / datatrove {theirs['recall']} (target >= 0.95) [{_verdict(ours['recall'] >= 0.95)}]",
        f"   candidate pairs ours {ours['candidate_pairs']} / datatrove {theirs['candidate_pairs']}; {below.replace('_', ' ')}: "
        f"{ours[below]} / {theirs[below]}; {false.replace('_', ' ')}: {ours[false]} / {theirs[false]} "
        f"(target: no more than datatrove) [{_verdict(fewer_false)}]",
    ]


def _plan_lines(p: dict) -> list[str]:
    rows = [
        [e["docs"], e["seconds"], e["peak_rss_mb"], e["clusters"], e["dropped"], "yes" if e["agrees"] else "NO"]
        for e in p["sizes"]
    ]
    x = p["extrapolated_100m"]
    return [
        "",
        "13. near-dedup plan on synthetic band keys (14 bands, 5 % planted copies)",
        *_table(["documents", "seconds", "peak RSS MB", "clusters", "dropped", "decisions = planted"], rows),
        f"   straight line to 100M documents: ~{x['seconds_linear']:,} s, ~{x['peak_rss_gb_linear']} GB peak on one machine "
        "(docs/scale.md: how it partitions instead)",
    ]


def _mixture_lines(mx: dict) -> list[str]:
    lines = ["", "7. mixtures: curate mix and exports vs the bare tokenizers batch API (tokens include one eos per record)"]
    if "skipped" in mx:
        return lines + [f"   skipped: {mx['skipped']}"]
    c, bare = mx["candidates"], mx["bare"]
    sources = ", ".join(f"{name} {s['records']:,} ({s['tokens']:,} tokens)" for name, s in c["by_source"].items())
    lines.append(
        f"   candidates: {sources}; {c['distinct_texts']:,} distinct of {c['texts']:,} texts; synthetic = sentence shuffle "
        f"of {c['rewritten_docs']} documents; {c['planted_mmlu']} replay documents carry a pasted MMLU question; set-up {mx['setup_s']} s"
    )
    rows = [
        [
            "bare encode_batch_fast (fastest pass)",
            "-",
            bare["texts"],
            bare["tokens"],
            bare["seconds"],
            bare.get("cpu_seconds", "-"),
            bare.get("cores_busy", "-"),
            bare["tokens_per_s"],
            "1.00",
            "-",
            "",
            "",
        ]
    ]
    for v in mx["variants"].values():
        ok = v["ratio"] >= v["target"]
        rows.append(
            [
                f"mix, decontamination {v['decontamination']}",
                v["cache"],
                v["records"],
                v["tokens"],
                v["seconds"],
                v.get("cpu_seconds", "-"),
                v.get("cores_busy", "-"),
                v["tokens_per_s"],
                _fmt(v["ratio"], 2),
                _fmt(v["ceiling_ratio"], 2) if "ceiling_ratio" in v else "-",
                f">= {v['target']}: {_verdict(ok)}",
                "equal" if v["agreement"]["equal"] else "DIFFERENT",
            ]
        )
    lines += _table(
        [
            "side",
            "cache",
            "records",
            "tokens",
            "seconds",
            "CPU s",
            "cores busy",
            "tokens/s",
            "ratio",
            "ceiling",
            "target",
            "vs bare count",
        ],
        rows,
    )
    lines.append(
        "   CPU s: every thread's CPU time over the timed part; ceiling: the ratio with that CPU time spread over all "
        f"{mx.get('cores', '?')} cores and none idle (no overlap of steps beats it: below the target, only less CPU can reach it)"
    )
    cold = [v for v in mx["variants"].values() if "rounds" in v]
    if cold:
        lines.append(
            f"   cold rounds, in turn (bare pass, then each cold mix; the table shows each mix's median round, the warm "
            f"mixes are against the median bare pass): bare s {bare.get('rounds_s')}; "
            + "; ".join(
                f"decontamination {v['decontamination']} ratios {[r['ratio'] for r in v['rounds']]} "
                f"(ceilings {[r['ceiling_ratio'] for r in v['rounds']]})"
                for v in cold
            )
        )
    step_names = ["setup", "select", "tokens", "decontaminate", "shuffle_write"]
    passes = bare["passes_s"]
    if isinstance(passes, dict):
        lines.append(
            "   bare passes (s): "
            + "; ".join(f"{mode.replace('_', ' ')} {', '.join(str(x) for x in times)}" for mode, times in passes.items())
        )
    lines += ["   seconds per mix step (tokens and decontaminate run at the same time):"] + [
        "   " + line
        for line in _table(
            ["mix", *step_names],
            [[name, *(v["steps"].get(step) for step in step_names)] for name, v in mx["variants"].items()],
        )
    ]
    on = mx["variants"]["on-cold"]
    lines.append(
        f"   decontamination: costs {mx['decontamination_cost_s']} s on the cold mix; removed {on['decontaminated']} records "
        f"({c['planted_mmlu']} planted); MMLU index built once in {on['index_s']} s before timing (not charged)"
    )
    for label, mg in (mx.get("marginal") or {}).items():
        lines.append(
            f"   marginal rate of a cold mix, decontamination {label} (1x {mg['tokens_1x']:,} tokens in {mg['seconds_1x']} s, "
            f"4x {mg['tokens_4x']:,} in {mg['seconds_4x']} s): {mg['tokens_per_s']:,.0f} tokens/s = {_fmt(mg['ratio'], 2)} of bare "
            f"[>= {mg['target']}: {_verdict(mg['ratio'] >= mg['target'])}]; fixed cost per mix {mg['fixed_s']} s"
        )
    d = mx.get("decontamination_agreement")
    if d:
        lines.append(
            f"   decontamination agreement with datatrove's NGramsDecontFilter (spaCy on whole texts), {d['texts']:,} sampled "
            f"texts with all {d['planted']} planted: flagged {d['flagged_fast']} vs {d['flagged_exact']}, "
            f"{d['differing_verdicts']} verdicts differ"
        )
    for name, v in mx["variants"].items():
        a = v["agreement"]
        lines.append(
            f"   agreement {name}: manifest {a['manifest_tokens']:,} tokens, bare {a['bare_tokens_plus_eos']:,} "
            f"(+1 eos x {a['records']:,} records), {a['mismatched_records']} records differ"
        )

    m = mx["memory"]
    lines += ["   peak memory of a cold mix (decontamination off), 1x = a quarter of the records and tokens:"]
    fields = ("records", "tokens", "shards", "rss_before_run_mb", "peak_rss_mb", "wait4_maxrss_mb", "seconds")
    lines += [
        "   " + line
        for line in _table(
            ["mixture", "records", "tokens", "shards", "RSS before mix MB", "peak RSS (VmHWM) MB", "wait4 maxrss MB", "seconds"],
            [[k, *(m[k][f] for f in fields)] for k in ("1x", "4x")],
        )
    ]
    lines.append("   (wait4's maxrss includes the parent's RSS at the fork, so it is not the mix's own peak)")
    ratio = m["rss_ratio_4x_1x"]
    lines.append(
        f"   RSS_4x / RSS_1x = {_fmt(ratio, 2)} [target <= {m['target']}: {_verdict(ratio is not None and ratio <= m['target'])}]; "
        f"growth over the pre-mix RSS 4x/1x = {_fmt(m['run_growth_ratio_4x_1x'], 2)}; time 4x/1x = {_fmt(m['time_ratio_4x_1x'], 2)}"
    )

    ex = mx["exports"]
    if "skipped" in ex:
        lines.append(f"   exports skipped: {ex['skipped']}")
        return lines
    lines.append("   exports of the cold mixture (decontamination off), export_mixture timed whole:")
    rows = []
    for fmt, r in ex["formats"].items():
        if "error" in r:
            rows.append([fmt, None, None, None, r["error"][:60], None])
        else:
            rows.append([fmt, r["tokens"], r["seconds"], r["tokens_per_s"], _fmt(r["ratio_vs_bare"], 2), r["bytes"]])
    lines += ["   " + line for line in _table(["format", "tokens", "seconds", "tokens/s", "ratio vs bare", "bytes"], rows)]
    return lines


def _gate_lines(g: dict) -> list[str]:
    goals = g["goals"]
    lines = [
        "",
        f"8. rewrite output gates on the labelled set: {g['good']} good and {g['bad']} bad outputs (tests/data/gate_eval.yaml)",
        f"   caught {g['catch_rate']:.1%} of bad [goal >= {goals['catch_rate']:.0%}: {_verdict(g['catch_rate'] >= goals['catch_rate'])}]; "
        f"wrongly rejected {g['false_reject_rate']:.1%} of good "
        f"[goal <= {goals['false_reject_rate']:.0%}: {_verdict(g['false_reject_rate'] <= goals['false_reject_rate'])}]",
    ]
    rows = [
        [
            kind,
            e["cases"],
            e["caught"],
            f"{e['catch_rate']:.0%}",
            ", ".join(f"{k} {v}" for k, v in sorted(e["first_gates"].items())),
            " ".join(e["missed"]),
        ]
        for kind, e in g["kinds"].items()
    ]
    lines += ["   " + line for line in _table(["kind", "cases", "caught", "share", "rejected first by", "missed"], rows)]
    rows = [
        [
            gate,
            f"{e['own_kind_caught']}/{e['own_kind_cases']}" if e["own_kind_cases"] else "-",
            e["fired_on_bad"],
            e["fired_on_good"],
            f"{e['false_reject_rate']:.0%}",
        ]
        for gate, e in g["gates"].items()
    ]
    lines += [
        "   " + line for line in _table(["gate", "its own kind caught", "failed on bad", "failed on good", "false rejects"], rows)
    ]
    for miss in g["false_rejects"]:
        lines.append(f"   false reject {miss['id']}: {miss['reason']} ({miss['verdict']})")
    return lines


def _language_lines(r: dict) -> list[str]:
    lines = ["", "9. quality stage per language (bundled Wikipedia reference documents, each language's own block, one thread)"]
    rows = [
        [
            language,
            e["word_tokenizer"],
            e["documents"],
            e["docs_per_s"],
            e["words_per_s"],
            _fmt(e["speed_vs_english"], 2),
            f"{e['kept_share']:.1%} [{_verdict(e['kept_share'] >= r['kept_goal'])}]",
        ]
        for language, e in r["languages"].items()
    ]
    header = ["language", "word tokenizer", "docs", "docs/s", "words/s", "speed vs en", f"kept (goal >= {r['kept_goal']:.0%})"]
    return lines + ["   " + line for line in _table(header, rows)]
