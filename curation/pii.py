"""PII redaction in kept documents: emails and public IPs through datatrove's PII formatter,
phone numbers through our own pattern (datatrove has none). Nothing is rejected here; the number
of redactions is recorded per document."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq

from curation.stage import DocumentStage, FinishContext, Rejection

# international or North-American style numbers with at least 9 digits in groups; dots are not
# accepted as separators so that dotted IPv4 addresses and version numbers never match
_PHONE = re.compile(r"(?<![\w+.])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?)?\d{2,4}(?:[ -]\d{2,4}){1,4}(?![\w.]\d)(?!\w)")
# numbers written the way one language's texts write them, on top of the pattern above: French
# numbers are ten digits in pairs, often dotted (01.23.45.67.89), or +33 and nine digits; the
# pattern is applied to French documents only, so version strings elsewhere are left alone
_PHONE_BY_LANGUAGE = {
    "fr": re.compile(r"(?<![\w.+])(?:\+33[ .]?[1-9]|0[1-9])(?:[ .-]?\d{2}){4}(?![\w]|[.,]?\d)"),
}
PHONE_REPLACEMENT = "+1 555 0100"


def _count_digits(s: str) -> int:
    return sum(ch.isdigit() for ch in s)


def redact_phones(text: str, language: str | None = None) -> tuple[str, int]:
    """Phone numbers replaced (the document's language adds the patterns of its own usage), and
    how many."""
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        if _count_digits(match.group(0)) < 9:
            return match.group(0)
        count += 1
        return PHONE_REPLACEMENT

    text = _PHONE.sub(replace, text)
    local = _PHONE_BY_LANGUAGE.get(language or "")
    return (local.sub(replace, text), count) if local else (text, count)


class PiiRedaction(DocumentStage):
    name = "pii"
    config_section = "pii"

    def setup(self) -> None:
        from datatrove.pipeline.formatters import PIIFormatter

        self.formatter = PIIFormatter(remove_emails=self.config.emails, remove_ips=self.config.ips)

    def check(self, row: dict) -> Rejection | None:
        cfg, formatter = self.config, self.formatter
        text, changes = redact_phones(row["text"], row.get("language")) if cfg.phones else (row["text"], 0)
        if cfg.emails:
            changes += sum(1 for _ in formatter.emails_replacer.regex.finditer(text))
        if cfg.ips:
            changes += sum(1 for m in formatter.ip_replacer.regex.finditer(text) if formatter.ip_replacer.validator(m.group(0)))
        redacted = formatter.format(text)
        row["text"] = redacted
        row["pii_redactions"] = changes
        row["n_chars"] = len(redacted)
        return None

    def run_summary(self, ctx: FinishContext) -> dict:
        tables = [pq.read_table(p, columns=["pii_redactions"]) for p in ctx.final_curated]
        redactions = pa.concat_tables(tables).column(0).to_pylist()
        return {"pii_redactions": {"documents": sum(1 for r in redactions if r), "redactions": sum(r or 0 for r in redactions)}}
