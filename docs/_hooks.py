"""mkdocs hooks: the reference pages that are generated from the code, so they cannot
drift. A page holds a marker ``<!-- generated: NAME -->`` that is replaced by

- ``cli``: the command line's help, from the typer app (``shallowflow.cli.app``);
- ``columns``: the data dictionary, from ``shallowflow.columns``;
- ``knobs``: every knob of a cell, from ``shallowflow.config.KNOBS``.
"""

from __future__ import annotations

import os
import re

MARKER = re.compile(r"<!-- generated: (\w+) -->")


def _cli() -> str:
    import click
    import typer.main
    from typer.cli import get_docs_for_click

    from shallowflow.cli import app

    command = typer.main.get_command(app)
    ctx = click.Context(command, info_name="shallowflow")
    text = get_docs_for_click(obj=command, ctx=ctx, name="shallowflow")
    return text.split("\n", 1)[1]  # the page has its own title


def _columns() -> str:
    from shallowflow.columns import markdown

    return markdown()


def _knobs() -> str:
    from shallowflow.config import KNOBS

    rows = ["| knob | spec | meaning | default |", "|---|---|---|---|"]
    for knob, (spec, info) in KNOBS.items():
        extra = info.json_schema_extra
        auto = extra.get("auto") if isinstance(extra, dict) else None
        default = f"auto: {auto}" if auto else f"`{info.default!r}`"
        where = spec or "(chooses an auto value)"
        meaning = (info.description or "").replace("|", "\\|")  # "gd | flow" in a cell
        rows.append(f"| `{knob}` | {where} | {meaning} | {default} |")
    return "\n".join(rows)


def on_config(config, **_):
    # The tutorials' kernels inherit this process's environment: without MPLBACKEND
    # (CI sets Agg) they start with the inline backend, which shows the figures.
    os.environ.pop("MPLBACKEND", None)
    return config


GENERATORS = {"cli": _cli, "columns": _columns, "knobs": _knobs}


def on_page_markdown(markdown: str, **_) -> str:
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


# The docstrings use Sphinx roles (:func:`simulate`); mkdocstrings renders them as
# ":func:" before the code, which reads as noise: keep the code only.
ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj):(?=<code>)")


def on_post_page(output: str, **_) -> str:
    return ROLE.sub("", output)
