"""The reproduce report: each table's commands, numbers and figures, as Markdown."""

import re
import shutil
import tempfile
from pathlib import Path

from amsda_keras.files import write_text_atomically
from amsda_keras.inference import MODEL_FILE
from amsda_keras.results import tables as results
from amsda_keras.training.reporting import markdown_table

FIGURES = "figures"


def write_report(tables, output, records, seeds, docs=None, progress=True):
    """Writes `<output>/tables.md` and its figures; with `docs`, also updates that file.

    Args:
        tables: the `Table`s to report.
        output: the reproduce run folder (`<output>/<row.key>/seed-N`); its trained models
            give the attention heatmap.
        records: the run records the numbers come from (`<records>/<row.key>/seed-N`).
        seeds: the seeds the rows were asked to train with (shown in the commands and
            summarised in the tables).
        docs: optional Markdown file whose `<!-- reproduce:NAME -->` blocks get the tables;
            its figures go to `<docs folder>/figures`.
        progress: whether to show progress bars (attention maps load the data).
    """
    output = Path(output)
    figures = output / FIGURES
    if docs and (Path(docs).parent / FIGURES).is_dir():
        # The heatmap of a row whose trained model is not here is kept from there.
        shutil.copytree(Path(docs).parent / FIGURES, figures, dirs_exist_ok=True)
    blocks = {table.name: table_block(table, output, records, seeds, figures, progress)
              for table in tables}
    report = "".join(f"## {name}\n\n{block}\n" for name, block in blocks.items())
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output / "tables.md", report)
    print(report + f"\nReport written to {output / 'tables.md'}")
    if docs:
        docs = Path(docs)
        write_text_atomically(docs, replace_blocks(docs.read_text(), blocks))
        if figures.is_dir():
            shutil.copytree(figures, docs.parent / FIGURES, dirs_exist_ok=True)
        print(f"Tables {', '.join(blocks)} updated in {docs}, figures in "
              f"{docs.parent / FIGURES}")


def table_block(table, output, records, seeds, figures, progress):
    """One table's Markdown: caption, commands, the table and its family's best row."""
    summaries = results.load_summaries(records, table, seeds)
    comparisons = results.load_comparisons(records, table, summaries)
    commands = [row.command(seeds, output, table.folds) for row in table.rows
                if not row.majority_of]
    runs = (f"the {table.folds} folds × seeds {', '.join(map(str, seeds))} (a row with one "
            f"run per fold: seed {seeds[0]})" if table.folds
            else f"seeds {', '.join(map(str, seeds))}")
    parts = [f"{table.caption} Mean ± sample standard deviation over {runs}. Selection "
             f"accuracy: the split that picked the epoch (and the probe's C), at the kept "
             f"epoch; the other metrics are the untouched split's. Δ: paired difference from "
             f"the probe (and the reference row) on the same samples, with its bootstrap 95% "
             f"CI over the runs both have (`python -m amsda_keras.compare`). Wall time is per "
             f"run, on this machine.\n",
             "```bash\n" + "\n".join(commands) + "\n```\n",
             markdown_table(results.results_frame(table, summaries, comparisons))]
    best = results.best_row(table, summaries) if table.family else None
    if best:
        summary = summaries[best.key]
        metrics = results.run_metrics(summary)
        figures.mkdir(parents=True, exist_ok=True)
        confusion = figures / f"confusion_{table.name}.png"
        results.plot_summed_confusion(
            confusion, metrics, title=f"{best.label}, {summary['report']}, {len(metrics)} runs")
        parts += [f"Highest mean {summary['report']} accuracy of the {table.family} rows: "
                  f"**{best.label}**. Per class ({summary['report']}, mean ± std over runs); "
                  f"confusion matrix summed over the runs:\n",
                  markdown_table(results.per_class_frame(metrics)),
                  f"![{best.label} confusion matrix]({FIGURES}/{confusion.name})\n"]
    if table.fusion_curves:
        figures.mkdir(parents=True, exist_ok=True)
        curves = results.plot_fusion_weight_curves(
            figures / f"fusion_weights_{table.name}.png", table, summaries)
        if curves:
            parts.append(f"Learned fusion weights per epoch (each row's first run; dashed: "
                         f"the kept epoch):\n\n![fusion weights per epoch]"
                         f"({FIGURES}/{curves.name})\n")
    if table.family == "MAHFNet" and table.reference:
        reference = next(row for row in table.rows if row.key == table.reference)
        heatmap = attention_figure(summaries[reference.key], reference, output / table.folder(
            reference), figures, progress)
        if heatmap:
            parts.append(f"![AGAI attention of {reference.label} on a dev sample]"
                         f"({FIGURES}/{heatmap.name})\n")
    return "\n".join(parts)


def attention_figure(summary, row, group, figures, progress):
    """The AGAI heatmap of the first dev sample, from the trained model of the row's first
    run in its run folder `group`; where that run folder is gone, the heatmap already in
    `figures`, if any."""
    from amsda_keras.training.attention_maps import write_attention_maps

    if not summary:
        return None
    path = figures / f"attention_{row.key}.png"
    run = Path(group) / summary["members"][0]
    if not (run / MODEL_FILE).exists():
        kept = path.exists()
        print(f"No trained model in {run}: the {row.key} attention heatmap is "
              + ("kept from an earlier run." if kept else "left out."))
        return path if kept else None
    figures.mkdir(parents=True, exist_ok=True)
    # Its own folder: write_attention_maps also lists skipped samples there.
    with tempfile.TemporaryDirectory() as folder:
        (written,) = write_attention_maps(run, split="dev", count=1, output=folder,
                                          progress=progress)
        return Path(shutil.move(written, path))


def replace_blocks(text, blocks):
    """Replaces each `<!-- reproduce:NAME -->...<!-- /reproduce:NAME -->` block's content."""
    for name, content in blocks.items():
        pattern = re.compile(rf"(<!-- reproduce:{re.escape(name)} -->\n).*?(<!-- /reproduce:"
                             rf"{re.escape(name)} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"--docs: no `<!-- reproduce:{name} -->` ... "
                             f"`<!-- /reproduce:{name} -->` block to replace.")
        text = pattern.sub(lambda match: match.group(1) + content + match.group(2), text)
    return text

