"""The command line: ``shallowflow simulate | check-data | reproduce | sweep | verify``.

Side effects live here: reading files, writing results, progress bars, printing.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from shallowflow.config import KNOBS, auto_rule, is_auto
from shallowflow.errors import ShallowflowInputError
from shallowflow.storage import write_text_atomic

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Gradient flow of mean-field shallow ReLU networks on weakly interacting data "
    "(Dana, Bach, Pillaud-Vivien, NeurIPS 2025): simulate, reproduce, verify.",
)
console = Console(stderr=True)

DATA_NAMES = ("sphere", "orthogonal", "gaussian", "correlated")


_DEBUG = {"on": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(help="show the traceback of an unexpected error")] = False,
) -> None:
    _DEBUG["on"] = debug


def _fail(exc: Exception) -> None:
    console.print(f"[red]error[/red] {escape(str(exc))}")
    raise typer.Exit(2)


def _check_out(out: Path) -> None:
    """The output location, before anything is computed: a directory (or one that can
    be made), writable, not the current directory itself."""
    if str(out).strip() in ("", "."):
        raise ShallowflowInputError("out", "give an output directory (got the current directory)")
    if out.exists() and not out.is_dir():
        raise ShallowflowInputError("out", f"{str(out)!r} exists and is not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ShallowflowInputError("out", f"{str(out)!r} lies under a file, {str(probe)!r}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ShallowflowInputError("out", f"{str(probe)!r} is not writable")


def _guarded(name: str):
    """Run a command so that no traceback reaches the user: bad input exits 2 with its
    message; an unexpected error exits 1 with a short message naming the command, and
    its traceback goes to a log file (in the output directory when there is one);
    ``shallowflow --debug ...`` shows it."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ShallowflowInputError as exc:
                _fail(exc)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as exc:  # the top-level handler
                if _DEBUG["on"]:
                    raise
                out = kwargs.get("out")
                where = Path(out) if out is not None and Path(out).is_dir() else None
                try:
                    if where is None:
                        fd, log = tempfile.mkstemp(prefix=f"shallowflow-{name}-", suffix=".log")
                        os.close(fd)
                        log = Path(log)
                    else:
                        log = where / f"shallowflow-{name}-error.log"
                    write_text_atomic(traceback.format_exc(), log)
                    saved = f"traceback in {log}"
                except OSError:
                    saved = "the traceback could not be saved"
                console.print(
                    f"[red]shallowflow {name} failed[/red]: {type(exc).__name__}: "
                    f"{escape(str(exc)[:300])}\n{escape(saved)}; rerun with "
                    f"`shallowflow --debug {name} ...` to see it"
                )
                raise typer.Exit(1) from None

        return run

    return wrap


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


# The options of ``simulate`` are the configuration's knobs (shallowflow.config.KNOBS):
# their names, defaults and help come from the specs. The knobs below are the
# exceptions: data and state files are given as paths (--data FILE, --state FILE).
_NOT_OPTIONS = ("data_file", "state_file")
_CLI_HELP = {
    "data": "sphere | orthogonal | gaussian | correlated, or a file (.npz with X[, y]; .npy; .csv)",
    "n": "number of examples (ignored with a data file)",
    "d": "input dimension (ignored with a data file)",
    "p": "width, or 'auto' = p(n, eps)",
    "init": "asymmetric | balanced | gaussian | group | standard (or --state FILE)",
    "solver": "gd (step --lr) | flow (the exact event-driven flow through the kinks) "
    "| flow-floor (the older floored flow)",
    "geometry": "auto | dense | reduced | diagonal | implicit",
}


def _option(knob: str) -> inspect.Parameter:
    """The typer option of a knob: its type, default and help from its field."""
    info = KNOBS[knob][1]
    annotation: Any = info.annotation  # a type expression, built on at run time
    default = info.default
    helptext = _CLI_HELP.get(knob, info.description or knob)
    if get_origin(annotation) is Literal and "|" not in helptext:
        helptext += f" ({' | '.join(get_args(annotation))})"
    if get_origin(annotation) is tuple:  # a list of numbers, comma-separated
        annotation, default = str, ",".join(map(str, default))
        helptext += " (comma-separated)"
    elif get_origin(annotation) is Literal or knob in ("p", "geometry", "data"):
        annotation, default = str, "auto" if is_auto(knob) else default
    elif (rule := auto_rule(knob)) is not None:
        annotation, default = annotation | None, None
        helptext += f" (default {rule})"
    option = typer.Option(help=helptext)
    return inspect.Parameter(
        knob,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[annotation, option],
    )


_LIST_KNOBS = [k for k, (_, info) in KNOBS.items() if get_origin(info.annotation) is tuple]


def _numbers(param: str, text: str) -> list[float]:
    """A comma-separated list of numbers."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShallowflowInputError(
            param, f"expected numbers separated by commas, got {text!r}"
        ) from None


def _simulate_options() -> list[inspect.Parameter]:
    """Every knob as an option, then --state, --overwrite and --out."""
    knobs = [_option(k) for k in KNOBS if k not in _NOT_OPTIONS]
    extra = {
        "state": (
            Path | None,
            None,
            "initial state .npz: W (p×d), a (p); or W (runs×p×d), a (runs×p) as --keep-state "
            "writes it (run r starts from run r; --state-run K: every run from run K)",
        ),
        "overwrite": (bool, False, "replace finished results in --out"),
        "out": (Path, Path("out/simulate"), "output directory"),
    }
    kind = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter("ctx", kind, annotation=typer.Context), *knobs] + [
        inspect.Parameter(k, kind, default=v, annotation=Annotated[t, typer.Option(help=h)])
        for k, (t, v, h) in extra.items()
    ]


@_guarded("simulate")
def simulate(
    *, ctx: typer.Context, state: Path | None, overwrite: bool, out: Path, **knobs
) -> None:
    """Simulate R runs of one cell (a default Fig. 3 cell) and write config.json,
    runs.parquet (one row per run × recorded time) and summary.json into --out."""
    from shallowflow.api import run_simulation

    _check_out(out)
    if knobs["labels"].startswith("paper:"):  # --labels paper:lo,hi: |y_i| ~ U[lo, hi]
        knobs["labels"], knobs["label_range"] = knobs["labels"].split(":", 1)
    for knob in _LIST_KNOBS:
        knobs[knob] = _numbers(knob, knobs[knob])
    p, data = knobs.pop("p"), knobs.pop("data")
    knobs["p"] = None if p == "auto" else _int_or_fail("p", p)
    if data in DATA_NAMES:
        knobs["data"] = data
    elif not Path(data).exists():
        raise ShallowflowInputError(
            "data", f"{data!r} is neither a generator {DATA_NAMES} nor an existing file"
        )
    else:
        knobs["data"], knobs["data_file"] = "file", data
    if state is not None:
        knobs["state_file"] = str(state)
        # θ(0) is the file's: an --init given is refused (make_config), a default one
        # dropped; the runs of a multi-run file are its own unless --runs is given.
        for knob in ("init", "runs"):
            if _defaulted(ctx, knob):
                knobs.pop(knob)
    with _progress() as bar:
        task = bar.add_task("simulating", total=knobs.get("runs"))
        t0 = time.perf_counter()
        summ = run_simulation(
            out,
            progress=lambda k, tot: bar.update(task, completed=k, total=tot),
            overwrite=overwrite,
            **knobs,
        )
    wall = time.perf_counter() - t0
    typer.echo(
        f"{summ['runs']} runs, n={summ['n']} d={summ['d']} p={summ['p']} "
        f"({summ['solver']}, {summ['geometry']}) in {wall:.1f} s\n"
        f"success fraction {summ['success_fraction']:.3f} (reached the stop loss)  "
        f"interpolated fraction {summ['interpolated_fraction']:.3f} (loss <= 1/(2n))\n"
        f"median final loss {summ['median_final_loss']:.3e}  "
        f"median mu at end {summ['median_mu_end']:.3e}\n"
        f"results in {out}/"
    )
    if knobs["require_coverage"] and summ["fully_covered_fraction"] < 1.0:
        short = round((1.0 - summ["fully_covered_fraction"]) * summ["runs"])
        console.print(
            f"[yellow]warning[/yellow] require_coverage: {short} of {summ['runs']} runs found "
            "no fully covering start in 1000 draws (they start uncovered; see coverage0); "
            "a wider network (--p) covers more often"
        )


simulate.__signature__ = inspect.Signature(_simulate_options())


def _defaulted(ctx: typer.Context, param: str) -> bool:
    """Whether the command's option ``param`` was left at its default."""
    source = ctx.get_parameter_source(param)
    return source is None or source.name == "DEFAULT"


app.command()(simulate)


def _int_or_fail(param: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ShallowflowInputError(
            param, f"expected an integer >= 1 or 'auto', got {text!r}"
        ) from None


@app.command("check-data")
@_guarded("check-data")
def check_data_cmd(
    file: Annotated[Path, typer.Argument(help=".npz with X[, y]; .npy; .csv")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Describe a data set against the theory: n, d, rank, orthogonality, κ(X), n·κ,
    the d that sub-Gaussian data would need, widths p(n, ε) and the prediction."""
    from shallowflow.io import load_data
    from shallowflow.theory.datacheck import check_data, format_report

    X, y = load_data(file)
    res = check_data(X, y)
    typer.echo(json.dumps(res) if as_json else format_report(res))


FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6", "all")


@app.command()
@_guarded("reproduce")
def reproduce(
    figure: Annotated[str, typer.Argument(help="fig2 | fig3 | fig4 | fig5 | fig6 | all")],
    preset: Annotated[
        str, typer.Option(help="quick (CPU, minutes) | paper (SPEC §5, GPU; also called full)")
    ] = "quick",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/reproduce"),
    resume: Annotated[bool, typer.Option(help="skip finished cells")] = False,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster")] = None,
    solver: Annotated[
        str, typer.Option(help="gd (the paper's η = 1) | flow (exact) | flow-floor")
    ] = "gd",
    adaptive: Annotated[
        bool | None,
        typer.Option(
            "--adaptive/--grid",
            help="locate the thresholds of Figs. 3-5 by the adaptive search, or run the full "
            "n grid (default: adaptive for the paper preset of Figs. 4 and 5, else the grid)",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="recompute finished cells in --out")] = False,
) -> None:
    """Reproduce the paper's Figures 2–6: runs.parquet, points.parquet, PNG/PDF figures,
    report.md, report.html and report.json in --out."""
    from shallowflow.experiments.reproduce import reproduce as run

    if figure not in FIGURES:
        raise ShallowflowInputError("figure", f"{figure!r}; allowed: {FIGURES}")
    _check_out(out)
    t0 = time.perf_counter()
    res = run(
        figure,
        preset,
        out,
        resume=resume,
        executor=executor,
        ray_address=ray_address,
        solver=solver,
        adaptive=adaptive,
        progress=console.is_terminal,
        overwrite=overwrite,
    )
    typer.echo(_verdicts(res))
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s; report: {out}/report.md")


def _verdicts(res: dict) -> str:
    lines = []
    for fig, info in res.get("figures", {}).items():
        for v in info.get("verdicts", []) if isinstance(info, dict) else []:
            lines.append(f"{fig}: {v}")
    return "\n".join(lines)


@app.command()
@_guarded("sweep")
def sweep(
    file: Annotated[Path, typer.Argument(help="sweep definition (.toml or .yaml)")],
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/sweep"),
    resume: Annotated[bool, typer.Option(help="skip finished cells")] = False,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster")] = None,
    overwrite: Annotated[bool, typer.Option(help="recompute finished cells in --out")] = False,
) -> None:
    """Run a user-defined sweep: [base] knobs × [grid] lists (see examples/sweep.toml)."""
    from shallowflow.experiments.sweepfile import run_sweep_file

    _check_out(out)
    df = run_sweep_file(
        file, out, resume=resume, executor=executor, ray_address=ray_address, overwrite=overwrite
    )
    typer.echo(f"{len(df)} cells, {int(df['runs'].to_numpy().sum())} runs; results in {out}/")


@app.command()
@_guarded("study")
def study(
    name: Annotated[str, typer.Argument(help="a study (shallowflow.experiments.studies) or all")],
    preset: Annotated[
        str, typer.Option(help="quick (CPU, minutes) | paper (GPU; also called full)")
    ] = "quick",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/study"),
    resume: Annotated[bool, typer.Option(help="skip finished cells")] = False,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="existing Ray cluster")] = None,
    overwrite: Annotated[bool, typer.Option(help="recompute finished cells in --out")] = False,
) -> None:
    """Run a study of a question the paper leaves open (conjecture1: the rate's exponent;
    flow: GD's step; width: N(d, p); initialisation: Assumption 1; activations: the width
    per σ; smallinit: plateaus from a small start; groupinit: Gaussian against group init;
    kernels: the network against kernels; constants: Theorem 1's C): runs, table, figure,
    study.md in --out. `study all` runs each into --out/NAME, then open_questions.md/.html."""
    from shallowflow.experiments.protocol import preset_name
    from shallowflow.experiments.studies import ALL, run_study
    from shallowflow.experiments.studies import study as find
    from shallowflow.experiments.studies.questions import QUESTIONS_STEM, run_all

    if name != ALL:
        find(name)
    preset_name(preset)
    _check_out(out)
    t0 = time.perf_counter()
    options: dict[str, Any] = dict(
        resume=resume,
        overwrite=overwrite,
        executor=executor,
        ray_address=ray_address,
        progress=console.is_terminal,
    )
    if name == ALL:
        res = run_all(preset, out, **options)
        for study_name, summary in res["studies"].items():
            typer.echo(f"{study_name}: {summary['verdicts'][0]}")
        report = out / f"{QUESTIONS_STEM}.md"
    else:
        res = run_study(name, preset, out, **options)
        typer.echo("\n".join(res["verdicts"]))
        report = out / "study.md"
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s; report: {report}")


@app.command()
@_guarded("verify")
def verify(
    preset: Annotated[
        str, typer.Option(help="quick (CPU, minutes) | paper (GPU; also called full)")
    ] = "quick",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/verify"),
    only: Annotated[str | None, typer.Option(help="run only this check")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a finished ledger in --out")] = False,
) -> None:
    """Check the paper's claims numerically; exit code 0 iff no check FAILs."""
    from shallowflow.verify import run_verify

    _check_out(out)
    ledger = run_verify(
        preset, out=out, only=only, progress=console.is_terminal, overwrite=overwrite
    )
    for r in ledger.results:
        typer.echo(f"{r.verdict.value:<13} {r.name:<18} {r.summary}")
    typer.echo(f"ledger: {out}/verify.md")
    raise typer.Exit(0 if ledger.ok else 1)


def main() -> None:  # pragma: no cover
    """The console script's entry point: run the typer app on the command line's arguments."""
    app(sys.argv[1:])
