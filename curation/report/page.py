"""A report's numbers drawn as one self-contained HTML page.

Charts are Plotly figures with plotly.js inlined once (no CDN, nothing fetched when the page is
opened). Everything that comes from data (document text, ids, urls, reasons, config values) is
escaped with `html.escape` before it reaches the page, chart labels included (Plotly reads a few
HTML tags in labels), so a document holding `<script>` or a `javascript:` link is shown, never run.
Tables and examples are plain HTML; examples sit in `<details>` so a page of many reasons stays
readable.
"""

from __future__ import annotations

import json
from html import escape

import yaml

from warehouse.warehouse import MIXTURE, REWRITE, RUN

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
td.l,th.l{text-align:left}details{margin:.3rem 0}summary{cursor:pointer}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;max-height:20rem;overflow:auto;font-size:.85rem}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.5rem}.muted{color:#777}.fail{color:#b00}.ok{color:#070}
"""


def _e(value) -> str:
    """A value from data, escaped for the page and for chart labels (so that Plotly's pseudo-HTML
    never sees a tag or link)."""
    return escape("" if value is None else str(value), quote=True)


def _table(columns: list[str], rows: list[list], left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{_e(v)}</td>' for c, v in zip(columns, row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class _Charts:
    """Figures in the order they are added, each drawn into its own div by the page's one script."""

    def __init__(self):
        self.count = 0

    def add(self, figure) -> str:
        self.count += 1
        div = f"chart-{self.count}"
        spec = figure.to_json()
        return (
            f'<div id="{div}" class="chart"></div><script type="application/json" id="{div}-spec">{_script_safe(spec)}</script>'
        )


def _script_safe(text: str) -> str:
    # JSON inside a <script> block must not contain "</" (it would end the block)
    return text.replace("</", "<\\/")


def _figure(traces: list, title: str, x: str, y: str, shapes: list | None = None, barmode: str | None = None):
    import plotly.graph_objects as go

    figure = go.Figure(data=traces)
    figure.update_layout(
        title=_e(title),
        xaxis_title=_e(x),
        yaxis_title=_e(y),
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
        shapes=shapes or [],
        barmode=barmode,
        template="plotly_white",
    )
    return figure


def _threshold_line(x: float | None) -> list:
    if x is None:
        return []
    return [{"type": "line", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1, "line": {"color": "#b00", "dash": "dash"}}]


def _histogram_figure(hist: dict, title: str, x: str, threshold: float | None):
    import plotly.graph_objects as go

    centers = [(a + b) / 2 for a, b in zip(hist["edges"], hist["edges"][1:])]
    width = hist["edges"][1] - hist["edges"][0]
    bars = go.Bar(x=centers, y=hist["counts"], width=width, name="documents")
    label = f"{title} (dashed: threshold {threshold:.4g})" if threshold is not None else title
    return _figure([bars], label, x, "documents", _threshold_line(threshold))


def _header(numbers: dict) -> str:
    job = numbers["job"]
    config = job.get("config")
    rows = [
        ["status", job.get("status")],
        ["started", job.get("started_at")],
        ["finished", job.get("finished_at")],
        ["seconds", job.get("seconds")],
        ["reproduce", numbers["command"]],
        *[[f"version: {name}", v] for name, v in numbers["versions"].items()],
    ]
    config_text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config else "(none recorded)"
    return (
        f"<h1>{_e(numbers['kind'])} {_e(numbers['id'])}</h1>"
        + _table(["", "value"], rows, left=("", "value"))
        + f"<details><summary>config (save as a file to reproduce)</summary><pre>{_e(config_text)}</pre></details>"
    )


def _anchor(doc_id: str) -> str:
    import hashlib

    return "doc-" + hashlib.sha256(doc_id.encode()).hexdigest()[:16]


def _example(example: dict) -> str:
    where = f"{example['input_file']} row {example['input_row']}" if example.get("input_file") else ""
    link = ""
    if example.get("duplicate_of"):
        link = f' · duplicates <a href="#{_anchor(example["duplicate_of"])}">{_e(example["duplicate_of"])}</a>'
    cut = " (cut)" if example.get("cut") else ""
    return (
        f"<details><summary>{_e(example['doc_id'])} · {_e(example.get('detail'))}{link}</summary>"
        f'<p class="muted">{_e(where)} · {_e(example.get("url"))} · {_e(example.get("n_words"))} words · '
        f"language {_e(example.get('language'))}{cut}</p><pre>{_e(example['text'])}</pre></details>"
    )


def _run_body(n: dict, charts: _Charts) -> str:
    import plotly.graph_objects as go

    parts = []
    stages = n["stages"]
    names = [_e(s["stage"]) for s in stages]
    documents = go.Funnel(y=names, x=[s["docs_out"] for s in stages], textinfo="value+percent initial")
    words = go.Funnel(y=names, x=[s["words_out"] for s in stages], textinfo="value+percent initial")
    parts.append("<h2>Funnel</h2>" + charts.add(_figure([documents], "documents kept after each stage", "documents", "stage")))
    parts.append(charts.add(_figure([words], "words kept after each stage", "words", "stage")))
    columns = ["stage", "docs in", "kept", "dropped", "words kept", "bytes in", "bytes kept", "seconds"]
    keys = ["stage", "docs_in", "docs_out", "docs_rejected", "words_out", "bytes_in", "bytes_out", "seconds"]
    parts.append(_table(columns, [[s[k] for k in keys] for s in stages], left=("stage",)))
    parts.append("<h2>Why documents were dropped</h2>")
    if not n["reasons"]:
        parts.append("<p>Nothing was dropped.</p>")
    for reason in n["reasons"]:
        examples = "".join(_example(e) for e in reason["examples"])
        parts.append(
            f"<details><summary><b>{_e(reason['stage'])}: {_e(reason['reason'])}</b> · {_e(reason['docs'])} documents, "
            f"{_e(reason['words'])} words (examples: {len(reason['examples'])})</summary>{examples}</details>"
        )
    if n["duplicated"]:
        docs = "".join(
            f'<details id="{_anchor(doc_id)}"><summary>{_e(doc_id)} (run {_e(d["run_id"])})</summary><pre>{_e(d["text"])}</pre></details>'
            for doc_id, d in sorted(n["duplicated"].items())
        )
        parts.append(f"<h3>Documents the examples duplicate</h3>{docs}")
    clusters = n["near_duplicate_clusters"]
    parts.append("<h2>Near-duplicate clusters</h2>")
    if clusters:
        bars = go.Bar(x=[str(c["size"]) for c in clusters], y=[c["clusters"] for c in clusters])
        parts.append(charts.add(_figure([bars], "clusters by size (survivor included)", "documents in the cluster", "clusters")))
    else:
        parts.append("<p>No near-duplicate was dropped.</p>")
    languages = n["languages"]
    parts.append("<h2>Languages</h2>")
    if languages:
        names = [_e(row["language"]) for row in languages]
        traces = [
            go.Bar(x=names, y=[row["kept"] for row in languages], name="kept"),
            go.Bar(x=names, y=[row["dropped"] for row in languages], name="dropped at or after language ID"),
        ]
        parts.append(charts.add(_figure(traces, "documents per identified language", "language", "documents", barmode="stack")))
    parts.append("<h2>Scores</h2>")
    tox = n["toxicity"]
    parts.append(charts.add(_histogram_figure(tox["histogram"], "toxicity (flagged words per word)", "score", tox["threshold"])))
    pre = n["preselect"]
    if sum(pre["histogram"]["counts"]):
        parts.append(charts.add(_histogram_figure(pre["histogram"], "PreSelect score", "score", pre["threshold"])))
    else:
        parts.append("<p>No PreSelect score in this run.</p>")
    if n["buckets"]:
        bars = go.Bar(x=[b["bucket"] for b in n["buckets"]], y=[b["docs"] for b in n["buckets"]])
        parts.append(charts.add(_figure([bars], "classifier quality buckets", "bucket", "documents")))
    return "".join(parts)


def _verdicts(verdicts: dict) -> str:
    return " ".join(
        f'<span class="{"ok" if v in ("pass", "skipped", "stripped") else "fail"}">{_e(k)}: {_e(v)}</span>'
        for k, v in sorted(verdicts.items())
    )


def _marked(output: str, chunk: str | None) -> str:
    """The output, escaped, with each word the chunk lacks in <mark>: what the model added."""
    import re

    known = {w.lower() for w in re.findall(r"\w+", chunk or "")}
    pieces = re.split(r"(\w+)", output or "")
    return "".join(
        f"<mark>{_e(piece)}</mark>" if i % 2 and piece.lower() not in known else _e(piece) for i, piece in enumerate(pieces)
    )


def _rewrite_body(n: dict, charts: _Charts) -> str:
    import plotly.graph_objects as go

    styles = [_e(s["style"]) for s in n["styles"]]
    traces = [
        go.Bar(x=styles, y=[s["accepted"] for s in n["styles"]], name="accepted"),
        go.Bar(x=styles, y=[s["rejected"] for s in n["styles"]], name="rejected"),
    ]
    parts = ["<h2>Records per style</h2>" + charts.add(_figure(traces, "records per style", "style", "records", barmode="stack"))]
    gates = sorted({g["gate"] for g in n["by_gate"]})
    if gates:
        traces = [
            go.Bar(
                x=styles,
                y=[
                    sum(g["records"] for g in n["by_gate"] if g["style"] == s["style"] and g["gate"] == gate) for s in n["styles"]
                ],
                name=_e(gate),
            )
            for gate in gates
        ]
        parts.append(
            "<h2>Rejections by gate</h2>"
            + charts.add(_figure(traces, "rejected records by first failing gate", "style", "records", barmode="stack"))
        )
        parts.append(
            _table(
                ["style", "gate", "records"],
                [[g["style"], g["gate"], g["records"]] for g in n["by_gate"]],
                left=("style", "gate"),
            )
        )
    parts.append("<h2>Records beside their source chunks</h2>")
    for record in n["records"]:
        verdict = "accepted" if record["accepted"] else f"rejected by {record['reject_reason']}"
        parts.append(
            f"<details><summary>{_e(record['style'])} · {_e(verdict)} · {_e(record['record_id'])}</summary>"
            f"<p>{_verdicts(record['gate_verdicts'])}</p>"
            f'<div class="pair"><div><b>source chunk</b> ({_e(record["language"])})<pre>{_e(record["chunk"])}</pre></div>'
            f"<div><b>output</b> (marked: words the chunk does not have)<pre>{_marked(record['text'], record['chunk'])}</pre>"
            "</div></div></details>"
        )
    return "".join(parts)


def _mixture_body(n: dict, charts: _Charts) -> str:
    import plotly.graph_objects as go

    names = [_e(s["source"]) for s in n["sources"]]
    traces = [
        go.Bar(x=names, y=[s["requested_share"] for s in n["sources"]], name="requested"),
        go.Bar(x=names, y=[s["realised_share"] for s in n["sources"]], name="realised"),
    ]
    parts = [
        "<h2>Token shares</h2>"
        + charts.add(_figure(traces, "token share per source", "source", "share of tokens", barmode="group"))
    ]
    parts.append(
        _table(
            ["source", "kind", "requested", "realised", "tokens", "epochs", "max epochs", "decontaminated"],
            [
                [
                    s["source"],
                    s["kind"],
                    f"{s['requested_share']:.2%}",
                    f"{s['realised_share']:.2%}",
                    s["tokens"],
                    f"{s['epochs']:.2f}",
                    s["max_epochs"],
                    json.dumps(s["decontaminated"]),
                ]
                for s in n["sources"]
            ],
            left=("source", "kind", "decontaminated"),
        )
    )
    parts_pie = go.Pie(labels=[_e(f"{p['source']}: {p['part']}") for p in n["parts"]], values=[p["tokens"] for p in n["parts"]])
    parts.append("<h2>What the tokens are</h2>" + charts.add(_figure([parts_pie], "tokens by source and style", "", "")))
    parts.append("<h2>Decontamination</h2>")
    if n["decontaminated"]:
        parts.append(
            _table(
                ["eval set", "source", "records removed"],
                [[d["eval_set"], d["source"], d["records"]] for d in n["decontaminated"]],
                left=("eval set", "source"),
            )
        )
    else:
        parts.append("<p>No record shared an n-gram with an eval set.</p>")
    parts.append(f'<p class="muted">manifest: {_e(n["manifest"])} · {_e(n["totals"])}</p>')
    return "".join(parts)


_RENDER = """
document.querySelectorAll('div.chart').forEach(function (div) {
  var spec = JSON.parse(document.getElementById(div.id + '-spec').textContent);
  Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true});
});
"""


def render_page(numbers: dict) -> str:
    """The whole page: header, the kind's sections, plotly.js inlined once, the charts drawn on load."""
    from plotly.offline import get_plotlyjs

    charts = _Charts()
    body = {RUN: _run_body, REWRITE: _rewrite_body, MIXTURE: _mixture_body}[numbers["kind"]](numbers, charts)
    title = f"{numbers['kind']} {numbers['id']}"
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        # nothing on this page may load from anywhere: the policy makes a stray reference fail loudly
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        + _header(numbers)
        + body
        + f"<script>{get_plotlyjs()}</script><script>{_RENDER}</script></body></html>"
    )
