"""The HTML kit every report page is built from: one stylesheet, the page shell, tables and figures.

Pages are plain HTML and CSS: every value escaped, images embedded as base64 PNG (so one file can be
mailed or archived), no script, no external resource. The comparison report (:mod:`.report`) and the
sweep report (:mod:`bridge.sweep.report`) are both made of these pieces.
"""
from __future__ import annotations

import base64
import html
import json

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
       max-width: 1320px; padding: 1.5em; }
p, ul { max-width: 1180px; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .5em; text-align: left; vertical-align: top; }
table.pairs td + td { overflow-wrap: anywhere; }  /* long paths and settings wrap; field names do not */
th { background: #f1f3f5; } tbody tr:nth-child(even) { background: #fafafa; }
table.summary { font-size: .84em; }  /* its 16 columns fit the page */
table.summary td { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td:nth-child(-n+5) { text-align: left; }
.scroll { overflow-x: auto; }
.warnings { background: #fff4e5; border: 1px solid #f0a640; border-radius: 6px; padding: .6em 1.2em; }
.ok { background: #eaf7ea; border: 1px solid #7cc47c; border-radius: 6px; padding: .6em 1.2em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92em; }
code { background: #f1f3f5; padding: 0 .25em; border-radius: 3px; }
"""

escape = html.escape


def page(title: str, subtitle_html: str, parts: list[str]) -> str:
    """A whole page: ``title`` (text, escaped here) as its title and heading, ``subtitle_html`` and
    ``parts`` (HTML, already escaped) under it."""
    return "\n".join(["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
                      f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
                      f"<h1>{escape(title)}</h1>", f"<p class='sub'>{subtitle_html}</p>", *parts, "</body></html>"])


def cell(v) -> str:
    """A value as a table cell shows it: floats to 6 significant digits, lists and dicts as JSON."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "none" if v is None else str(v)


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="{escape(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def pairs(mapping: dict) -> str:
    """A two-column table of a mapping's fields and values."""
    return table(["field", "value"], [[k, v] for k, v in mapping.items()], "pairs")


def warnings(items: list[str], heading: str, all_clear: str) -> str:
    """The warnings box (``id='warnings'``), or the all-clear box when there are none."""
    if not items:
        return f"<div class='ok' id='warnings'>{escape(all_clear)}</div>"
    lis = "".join(f"<li>{escape(str(w))}</li>" for w in items)
    return f"<div class='warnings' id='warnings'><strong>{escape(heading)}</strong><ul>{lis}</ul></div>"


def figure(name: str, png: bytes, caption: str, files: str) -> str:
    """A figure embedded as base64 PNG, with its caption and where its files are (``files``: text)."""
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure id='figure-{escape(name)}'><img src='data:image/png;base64,{data}' alt='{escape(caption)}'>"
            f"<figcaption>{escape(caption)} Also {files}.</figcaption></figure>")
