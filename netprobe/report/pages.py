"""The report's pages: index.md and a self-contained index.html (no scripts, fonts or remote assets)."""

from __future__ import annotations

import html


def markdown_page(title: str, intro: list[str], sections) -> str:
    """index.md: key numbers, every plot embedded, every table linked."""
    out = [f"# {title}", "", *intro, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        out += [*(p + "\n" for p in s.text)]
        if s.highlights:
            out += ["| | |", "|---|---|", *(f"| {_cell(k)} | {_cell(v)} |" for k, v in s.highlights), ""]
        out += [f"![{p.caption}]({p.name}.png)\n" for p in s.plots]
        out += [f"{d.caption}:\n\n```mermaid\n{d.mermaid}```\n" for d in s.diagrams]
        out += [f"- [{t.caption}]({t.name}.csv)" for t in s.tables]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _cell(text) -> str:
    """A markdown table cell: a literal '|' (as in 'mean |2nd difference|') would end the cell."""
    return str(text).replace("|", "\\|")


_STYLE = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ccc}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}img{max-width:100%}
figcaption{color:#555;font-size:.9em}nav a{margin-right:.8em}
"""


def html_page(title: str, intro: list[str], sections) -> str:
    """index.html: the same content as index.md, readable offline in any browser."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>", f"<h1>{e(title)}</h1>"]
    out += [f"<p>{e(p)}</p>" for p in intro]
    out.append("<nav>" + "".join(f'<a href="#{e(s.key)}">{e(s.title)}</a>' for s in sections) + "</nav>")
    for s in sections:
        out.append(f'<h2 id="{e(s.key)}">{e(s.title)}</h2>')
        out += [f"<p>{e(p)}</p>" for p in s.text]
        if s.highlights:
            out.append("<table>" + "".join(f'<tr><th>{e(k)}</th><td class="num">{e(v)}</td></tr>'
                                           for k, v in s.highlights) + "</table>")
        out += [f'<figure><img src="{e(p.name)}.png" alt="{e(p.caption)}"><figcaption>{e(p.caption)}'
                + (f' (<a href="{e(p.name)}.svg">SVG</a>)' if "svg" in p.images else "") + "</figcaption></figure>"
                for p in s.plots]
        out += [f'<figure><img src="{e(d.name)}.svg" alt="{e(d.caption)}"><figcaption>{e(d.caption)}</figcaption>'
                '</figure>' for d in s.diagrams]
        if s.tables:
            out.append("<ul>" + "".join(f'<li><a href="{e(t.name)}.csv">{e(t.caption)}</a></li>'
                                        for t in s.tables) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
