#!/usr/bin/env python3
"""Draws the benchmarks' tables as charts: docs/*.svg from docs/bench/*.txt.

    python3 Scripts/charts.py [--png DIR]    # make charts; make bench runs it last

Each docs/bench/*.txt is one benchmark's output as printed, headed by two lines that
make bench writes before it: "Measured: <when, on what>" and "Command: <what ran>".
Every chart shows both, with the benchmark's own "Machine:" line, so that it says on
its face where, when and how it was measured. A file or table that is missing, or a
cell that is not a number, n/a or —, stops the script with a message and exit status 1:
no chart is drawn from half a run. --png also writes PNG copies to DIR, for a look.
"""
import argparse
import math
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "docs", "bench")
DOCS = os.path.join(ROOT, "docs")

# One colour per series, the same in every chart: ours first, then the references.
OURS, PYTHON, PYTHON_2, FAST_FIFO, FLOOR, FLOOR_2 = (
    "#1f6fb4", "#e08a1e", "#c9572c", "#7a5fb0", "#6f7b86", "#b5bdc4")


def fail(message):
    sys.exit(f"charts.py: {message}")


# Parsing ---------------------------------------------------------------------------

class Saved:
    """One saved output: its header lines and its markdown tables."""

    def __init__(self, name):
        self.path = os.path.join(BENCH, name + ".txt")
        self.shown = os.path.relpath(self.path, ROOT)
        try:
            with open(self.path, encoding="utf-8") as file:
                self.text = file.read()
        except OSError as error:
            fail(f"cannot read {self.shown} ({error.strerror}): `make bench` writes it")
        self.measured = self.line("Measured")
        self.command = self.line("Command")
        self.machine = self.line("Machine")
        self.references = self.line("References", required=False)
        # A run that prints numbers not to quote says so; the chart says it too.
        self.warnings = []
        if "QUICK:" in self.text:
            self.warnings.append("QUICK run: a smoke test with smaller counts, not figures to quote")
        if "WARNING: a debug build" in self.text:
            self.warnings.append("a debug build: these numbers mean nothing")
        self.tables = self.read_tables()

    def line(self, key, required=True):
        found = re.search(rf"^{key}: (.*)$", self.text, re.M)
        if not found and required:
            fail(f"{self.shown} has no '{key}:' line; was it written by `make bench`?")
        return found.group(1).strip() if found else None

    def read_tables(self):
        """Every table: its header's cells and its rows' cells (the |---| line checked, then dropped)."""
        tables, block = [], []
        for line in self.text.splitlines() + [""]:
            if line.startswith("|"):
                block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            elif block:
                if len(block) < 2 or not all(re.fullmatch(r":?-+:?", cell) for cell in block[1]):
                    fail(f"{self.shown}: a table without its |---| line under the header {block[0]}")
                tables.append((block[0], block[2:]))
                block = []
        return tables

    def table(self, first, columns):
        """The table whose first header cell begins with `first` and that has `columns` (ours
        first: the benchmarks stop rather than print n/a for ours, so every row needs it): that
        cell, and its rows as (row name, [(cell as printed, number or None) per column])."""
        for header, rows in self.tables:
            if header[0].startswith(first) and all(column in header for column in columns):
                indices = [header.index(column) for column in columns]
                if not rows:
                    fail(f"{self.shown}: the table '{header[0]}' has no rows")
                for row in rows:  # a cell too many or too few would shift every later column
                    if len(row) != len(header):
                        fail(f"{self.shown}: the row '{row[0]}' has {len(row)} cells, its header {len(header)}")
                parsed = [(row[0].replace("`", ""), [self.cell(row, i, header) for i in indices]) for row in rows]
                for name, cells in parsed:
                    if cells[0][1] is None:
                        fail(f"{self.shown}: no figure of ours ('{columns[0]}') in the row '{name}'")
                return header[0], parsed
        fail(f"{self.shown}: no table beginning '| {first}' with the columns {columns}; "
             f"tables found: {[header[0] for header, _ in self.tables] or 'none'}")

    def cell(self, row, index, header):
        """'4,872' -> 4872; '8.21' -> 8.21; '0.08x (1/12.8)' -> 0.08; 'n/a' or '—' -> None."""
        text = row[index]
        if text in ("n/a", "—", "-"):
            return text, None
        number = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?)x?(?: \(1/[\d.]+\))?", text)
        if not number:
            fail(f"{self.shown}: '{text}' in the row '{row[0]}', column '{header[index]}', is not a number")
        return text, float(number.group(1).replace(",", ""))


# Drawing ---------------------------------------------------------------------------

def draw(pyplot, saved, out, title, series, panels, png):
    """Horizontal bars, one group per table row, one bar per series that has a number
    (n/a and — leave no bar); values as printed at the bars' ends.
    series: [(label, colour)]; panels: [(unit, which way is better, [(row label, [(text, number)])])]."""
    from matplotlib.ticker import FuncFormatter
    missing = any(value is None for _, _, rows in panels for _, cells in rows for _, value in cells)
    small = [f"{saved.command}  →  {saved.shown}  →  Scripts/charts.py"]
    if saved.references:
        small.append(f"References: {saved.references}")
    if missing:
        small.append("No bar: n/a or — in the table (not measured in that case, or the program failed: "
                     f"see the notes in {saved.shown}).")

    # The layout in inches: the heading, then each panel (its bars, then its axis), then the small print.
    bar, width, left = 0.26, 9.0, 2.3
    legend_rows = (len(series) + 2) // 3
    top = 1.1 + 0.2 * len(saved.warnings) + 0.2 * legend_rows
    heights = [(sum(1 + sum(v is not None for _, v in cells) for _, cells in rows) - 1) * bar + 0.3
               for _, _, rows in panels]
    axis, footer = 0.7, 0.1 + 0.14 * len(small)
    total = top + sum(heights) + axis * len(panels) + footer
    figure = pyplot.figure(figsize=(width, total))
    y_top = total - top
    for (unit, better, rows), height in zip(panels, heights):
        ax = figure.add_axes([left / width, (y_top - height) / total, (width - left - 0.3) / width, height / total])
        y_top -= height + axis
        values = [v for _, cells in rows for _, v in cells if v is not None]
        # Log scale where the figures span orders of magnitude, or the short bars vanish.
        log = min(values) > 0 and max(values) / min(values) >= 30
        y, ticks, labels = 0, [], []
        for label, cells in rows:  # top to bottom, as in the table
            present = [(i, text, v) for i, (text, v) in enumerate(cells) if v is not None]
            ticks.append(-(y + (len(present) - 1) / 2))
            labels.append(textwrap.fill(label, 30))
            for i, text, v in present:
                ax.barh(-y, v, height=0.8, color=series[i][1])
                ax.text(v * 1.06 if log else v + max(values) * 0.01, -y, text,
                        va="center", fontsize=8, color="#333333")
                y += 1
            y += 1  # a gap between groups
        if log:
            ax.set_xscale("log")
            low = 10 ** math.floor(math.log10(min(values)) - 1e-9)  # the power of 10 below the smallest
            ax.set_xlim(low, max(values) * 2.5)  # room for the labels
        else:
            ax.set_xlim(0, max(values) * 1.18)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}" if x >= 1 else f"{x:g}"))
        ax.set_ylim(-(y - 2) - 0.6, 0.6)
        ax.set_yticks(ticks, labels, fontsize=9)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(f"{unit}{', log scale' if log else ''} ({better})", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="#e4e4e4", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    # Where, when and how: on the chart's face, not only in the file it came from.
    figure.text(0.1 / width, 1 - 0.2 / total, title, fontsize=12, weight="bold", va="top")
    figure.text(0.1 / width, 1 - 0.5 / total, f"Measured: {saved.measured}\nMachine: {saved.machine}",
                fontsize=7.5, color="#444444", va="top", linespacing=1.4)
    for n, warning in enumerate(saved.warnings):
        figure.text(0.1 / width, 1 - (0.95 + 0.2 * n) / total, warning, fontsize=8.5, color="#b00020", va="top")
    handles = [pyplot.Rectangle((0, 0), 1, 1, color=colour) for _, colour in series]
    figure.legend(handles, [label for label, _ in series], loc="upper left", fontsize=8, frameon=False,
                  bbox_to_anchor=(0.05 / width, 1 - (0.9 + 0.2 * len(saved.warnings)) / total), ncol=3,
                  handlelength=1.5, columnspacing=1.5)
    figure.text(0.1 / width, 0.12 / total, "\n".join(small), fontsize=6.5, color="#666666", va="bottom",
                linespacing=1.4)

    path = os.path.join(DOCS, out + ".svg")
    figure.savefig(path, metadata={"Date": None})  # no date inside: an unchanged chart diffs as unchanged
    if png:
        figure.savefig(os.path.join(png, out + ".png"), dpi=110)
    pyplot.close(figure)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def split(rows, unit, shown):
    """Groups rows into panels by their unit: unit(name) -> (unit, which way is better, row label)."""
    panels = {}
    for name, cells in rows:
        found = unit(name)
        if not found:
            fail(f"{shown}: cannot tell the unit of the row '{name}'")
        panels.setdefault(found[:2], []).append((found[2], cells))
    return [(unit, better, rows) for (unit, better), rows in panels.items()]


def main():
    parser = argparse.ArgumentParser(description="Draws docs/*.svg from docs/bench/*.txt.")
    parser.add_argument("--png", metavar="DIR", help="also write PNG copies to DIR")
    png = parser.parse_args().png
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        from matplotlib import pyplot
    except ImportError:
        fail("matplotlib is missing: `Scripts/install-dependencies.sh --bench` installs it (or `pip install matplotlib`)")
    pyplot.rcParams["svg.hashsalt"] = "swift-multiprocessing"  # the same ids each time, for diffs
    pyplot.rcParams["svg.fonttype"] = "none"  # text as text, not glyph outlines: a changed figure diffs as one
    if png:
        os.makedirs(png, exist_ok=True)

    # Every table read first: a missing one stops the script before any chart is replaced.
    codec, queue, pool = Saved("codec"), Saved("queue"), Saved("pool")
    _, codec_rows = codec.table("case", ["MessagePack ns/op", "JSON ns/op", "msgpack-c floor ns/op"])
    queue_columns = ["Multiprocessing.Queue", "Python multiprocessing.Queue", "faster-fifo"]
    _, throughput_rows = queue.table("case", queue_columns + ["C pipe floor", "C ring floor"])
    _, latency_rows = queue.table("round trip of one small item",
                                  queue_columns + ["C pipe ping-pong", "C ring ping-pong"])
    pool_title, pool_rows = pool.table("tiny tasks", ["ours (ProcessPool)", "Python Pool, chunksize 1",
                                                      "Python Pool, default chunksize", "ProcessPoolExecutor"])

    # Throughput is in items/s or MiB/s, as each row's name ends: one panel per unit.
    def queue_unit(name):
        found = re.fullmatch(r"(.*) \(((?:items|MiB)/s)\)", name)
        return found and (found.group(2), "longer is faster", found.group(1))
    throughput = split(throughput_rows, queue_unit, queue.shown)

    # The pool's table mixes tasks/s rows and round-trip rows in µs.
    def pool_unit(name):
        if name.startswith("tasks/s, "):
            return "tasks/s", "longer is faster", name[len("tasks/s, "):]
        if name.endswith(" (µs)"):
            return "µs per task, one at a time", "shorter is faster", name[:-len(" (µs)")]
        return None
    pool_panels = split(pool_rows, pool_unit, pool.shown)

    queue_series = [("Multiprocessing.Queue", OURS), ("Python multiprocessing.Queue", PYTHON),
                    ("faster-fifo", FAST_FIFO)]
    draw(pyplot, codec, "codec", "Codec: time per operation, MessagePack against JSON and the msgpack-c floor",
         [("MessagePack (MessagePackEncoder/Decoder)", OURS), ("JSON (Foundation's JSONEncoder/Decoder)", PYTHON),
          ("msgpack-c by hand (the floor)", FLOOR)],
         [("ns per operation", "shorter is faster", codec_rows)], png)
    draw(pyplot, queue, "queue-throughput", "Queues between processes: throughput",
         queue_series + [("C pipe floor", FLOOR), ("C ring floor", FLOOR_2)], throughput, png)
    draw(pyplot, queue, "queue-latency", "Queues between processes: round trip of one small item",
         queue_series + [("C pipe ping-pong", FLOOR), ("C ring ping-pong", FLOOR_2)],
         [("µs", "shorter is faster", latency_rows)], png)
    draw(pyplot, pool, "pool", f"Process pool: {pool_title}",
         [("ProcessPool", OURS), ("Python Pool, chunksize 1", PYTHON), ("Python Pool, default chunksize", PYTHON_2),
          ("ProcessPoolExecutor", FAST_FIFO)], pool_panels, png)


if __name__ == "__main__":
    main()
