"""
report.py: RUN_DIR/report.md, one page on a run.sh run, read from the files its steps left behind.

    python report.py runs/cpu                             # write runs/cpu/report.md
    python report.py runs/cpu --step pretrain --seconds 812.4   # run.sh, after a step succeeded
    python report.py runs/cpu --show pretrain             # one line: what a finished step produced

The --step form is run.sh's bookkeeping: it writes RUN_DIR/.done/STEP.json, the step's wall time and
what it produced (documents, tokens, losses, scores), and prints that as one line. The file is both the
step's done-marker and a row of the report's timing table. Every artifact is optional: a missing one
reads "missing", so the report of a half-finished run still shows how far it got.

The run directory, as run.sh lays it out:
    raw/                    prepare.py: the raw code corpus as token bins (meta.json counts it)
    annotations.jsonl       filter.py annotate: the teacher's labels of a sample
    filter/                 filter.py: the forest, its held-out metrics, kept.jsonl (the filtered code)
    textbooks.jsonl, exercises.jsonl (+ .report.json)             synth.py
    textbooks.clean.jsonl, exercises.clean.jsonl (+ .contamination.json)   evaluate.py --decontaminate
    codetextbook/, codeexercises/                                 prepare.py: the training bins
    base/, phi1/            train.py out_dirs: ckpt.pt, log.jsonl, loss.svg
    eval/MODEL-TASK.json    evaluate.py reports (pass@1)
"""

import argparse
import collections
import datetime
import json
import os
import platform
import sys

from prepare import atomic_write, duration, get_tokenizer, iter_jsonl

STEPS = ["raw", "annotate", "filter", "textbooks", "exercises", "decontaminate", "bins", "pretrain",
         "finetune", "evaluate"]
MODELS = {"base": "phi-1-base", "phi1": "phi-1"}
TASKS = {"humaneval": "HumanEval", "mbpp": "MBPP"}
# The paper's pass@1 (Table 1): phi-1-base and phi-1 are both 1.3B parameters, trained on 7B tokens.
PAPER = {("base", "humaneval"): 0.29, ("phi1", "humaneval"): 0.506, ("phi1", "mbpp"): 0.555}
MISSING = "missing"


# ----------------------------------------------------------------------------
# Reading artifacts: each returns None when its file is absent or unreadable, never raises.

def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def jsonl_counts(path):
    """{"documents", "tokens"} of a JSONL file's `text` fields, or None if there is no such file."""
    if not os.path.isfile(path):
        return None
    texts = [r["text"] for r in iter_jsonl(path) if isinstance(r.get("text"), str)]
    tokens = sum(len(ids) for ids in get_tokenizer().encode_ordinary_batch(texts, num_threads=os.cpu_count() or 1))
    return {"documents": len(texts), "tokens": tokens}


def bin_counts(out_dir):
    """{"documents", "tokens"} of a prepare.py directory (train + val), or None if it never finished."""
    meta = read_json(os.path.join(out_dir, "meta.json"))
    if not meta:
        return None
    splits = meta["splits"].values()
    return {"documents": sum(s["documents"] for s in splits), "tokens": sum(s["tokens"] for s in splits)}


def train_log(out_dir):
    """The last train loss, last val loss, steps and median tokens/s of a train.py out_dir."""
    path = os.path.join(out_dir, "log.jsonl")
    if not os.path.isfile(path):
        return None
    records = list(iter_jsonl(path))
    steps = [r for r in records if r.get("loss") is not None]
    evals = [r for r in records if r.get("val_loss") is not None]
    speeds = sorted(r["tokens_per_sec"] for r in steps if r.get("tokens_per_sec"))
    return {"iters": max((r["iter"] for r in records), default=0),
            "train_loss": steps[-1]["loss"] if steps else None,
            "val_loss": evals[-1]["val_loss"] if evals else None,
            "first_val_loss": evals[0]["val_loss"] if evals else None,
            "tokens_per_sec": speeds[len(speeds) // 2] if speeds else None}


def eval_report(run, model, task):
    """evaluate.py's report eval/MODEL-TASK.json, or None."""
    return read_json(os.path.join(run, "eval", f"{model}-{task}.json"))


def pass_at_1(run, model, task):
    """(pass@1, problems) from eval/MODEL-TASK.json, or None."""
    report = eval_report(run, model, task)
    if not report or "pass@1" not in report:
        return None
    return report["pass@1"], report.get("problems")


def distinct_completions(run, model, task):
    """(distinct completions, samples) in eval/MODEL-TASK.samples.jsonl, or None."""
    path = os.path.join(run, "eval", f"{model}-{task}.samples.jsonl")
    if not os.path.isfile(path):
        return None
    completions = [r.get("completion") for r in iter_jsonl(path)]
    return len(set(map(str, completions))), len(completions)


def forest_metrics(run):
    """The forest's held-out metrics (filter.py train) and what it kept (filter.py keep)."""
    return read_json(os.path.join(run, "filter", "metrics.json")), read_json(os.path.join(run, "filter", "keep.json"))


# ----------------------------------------------------------------------------
# What each step produced: small dicts, stored in its done-marker and printed as one line.

def produced(run, step):
    p = lambda *parts: os.path.join(run, *parts)
    if step == "raw":
        return bin_counts(p("raw"))
    if step == "annotate":
        return jsonl_counts(p("annotations.jsonl"))
    if step == "filter":
        metrics, kept = forest_metrics(run)
        return kept and {"documents": kept["kept_documents"], "tokens": kept["kept_tokens"],
                         **{k: metrics[k] for k in ("accuracy", "f1") if metrics and k in metrics}}
    if step in ("textbooks", "exercises"):
        return jsonl_counts(p(f"{step}.jsonl"))
    if step == "decontaminate":
        out = {}
        for kind in ("textbooks", "exercises"):
            r = read_json(p(f"{kind}.contamination.json"))
            if r:
                out[f"{kind}_kept"], out[f"{kind}_removed"] = r["kept"], r["removed"]
        return out or None
    if step == "bins":
        a, b = bin_counts(p("codetextbook")), bin_counts(p("codeexercises"))
        return a and b and {"codetextbook_tokens": a["tokens"], "codeexercises_tokens": b["tokens"]}
    if step in ("pretrain", "finetune"):
        log = train_log(p("base" if step == "pretrain" else "phi1"))
        return log and {k: v for k, v in log.items() if k in ("iters", "train_loss", "val_loss") and v is not None}
    if step == "evaluate":
        return {f"{m}_{t}_pass@1": r[0] for m in MODELS for t in TASKS if (r := pass_at_1(run, m, t))} or None
    raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


def number(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def one_line(marker):
    what = marker.get("produced") or {}
    items = ", ".join(f"{k} {number(v)}" for k, v in what.items()) or "nothing counted"
    return f"{items}; {duration(marker['seconds'])}"


def record_step(run, step, seconds):
    """Write the done-marker of `step`: run.sh calls this only after the step's command succeeded."""
    marker = {"step": step, "seconds": round(seconds, 1), "produced": produced(run, step),
              "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    os.makedirs(os.path.join(run, ".done"), exist_ok=True)
    with atomic_write(os.path.join(run, ".done", f"{step}.json")) as f:
        json.dump(marker, f, indent=1)
    print(f"== {step}: {one_line(marker)}")


def markers(run):
    return {s: m for s in STEPS if (m := read_json(os.path.join(run, ".done", f"{s}.json")))}


# ----------------------------------------------------------------------------
# The report, section by section: each takes (run directory, done-markers) and returns markdown lines.

def pct(x):
    return MISSING if x is None else f"{100 * x:.1f}%"


def section_funnel(run, done):
    """Raw -> annotated -> kept -> synthetic -> decontaminated -> bins, in documents and tokens."""
    def counted(step):  # counted when the step finished, else now (a run still going)
        return done[step]["produced"] if step in done else produced(run, step)
    rows = [("raw code corpus", "raw/", counted("raw")),
            ("annotated by the teacher", "annotations.jsonl", counted("annotate")),
            ("kept by the forest", "filter/kept.jsonl", counted("filter")),
            ("synthetic textbooks", "textbooks.jsonl", counted("textbooks")),
            ("synthetic exercises", "exercises.jsonl", counted("exercises"))]
    rows += [(f"{kind}, decontaminated", f"{kind}.clean.jsonl", jsonl_counts(os.path.join(run, f"{kind}.clean.jsonl")))
             for kind in ("textbooks", "exercises")]
    rows += [(name, f"{where}/", bin_counts(os.path.join(run, where)))
             for name, where in (("CodeTextbook: pretraining", "codetextbook"),
                                 ("CodeExercises: finetuning", "codeexercises"))]
    lines = ["| stage | documents | tokens | file |", "|---|---:|---:|---|"]
    for name, where, c in rows:
        c = c or {}
        lines.append(f"| {name} | {number(c.get('documents', MISSING))} | {number(c.get('tokens', MISSING))} "
                     f"| `{where}` |")
    lines.append("")
    path = os.path.join(run, "annotations.jsonl")
    if os.path.isfile(path):
        labels = collections.Counter(str(r.get("label")) for r in iter_jsonl(path))
        lines.append("The teacher's labels: " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())) +
                     (" (None: no clear label in the answer; left out of the forest's training)." if "None" in labels
                      else "."))
    for kind in ("textbooks", "exercises"):
        lines += synth_lines(kind, read_json(os.path.join(run, f"{kind}.jsonl.report.json")))
    return lines if lines[-1] == "" else lines + [""]


def synth_lines(kind, synth):
    """What synth.py's last run of `kind` did: how it ended, its speed, rejects by reason, whose examples."""
    if not synth:
        return []
    last, ended = synth.get("this_run", {}), synth.get("ended") or "?"
    speed = (f" in {duration(last['seconds'])} ({last['kept_per_minute']:.1f} a minute)"
             if last.get("seconds") and last.get("kept_per_minute") is not None else "")
    if ended == "interrupted":
        ended = "stopped by the time budget or Ctrl-C"
    rejected = last.get("rejected") or {}
    lines = [f"Synthetic {kind} (last run, ended: {ended}): teacher `{synth.get('model')}` kept {last.get('kept')}"
             f"{speed}, rejected {sum(rejected.values())}: {json.dumps(rejected)}."]
    sources = synth.get("examples_source")
    if sources:
        lines.append(f"Exercise examples in the file: {sources.get('teacher', 0)} the teacher's own, verified by "
                     f"running them; {sources.get('executed', 0)} observed by running the teacher's function on "
                     "inputs (they show what the code does, not what the task asked for).")
    return lines


def section_forest(run, done):
    metrics, kept = forest_metrics(run)
    if not metrics:
        return [f"{MISSING} (`filter/metrics.json`)", ""]
    lines = [f"{metrics['train_documents']} annotated documents to fit, {metrics['test_documents']} held out; "
              f"features: {metrics.get('embed', {}).get('embed', '?')}.", "",
              "| | accuracy | precision | recall | F1 |", "|---|---:|---:|---:|---:|",
              "| forest | " + " | ".join(number(metrics[k]) for k in ("accuracy", "precision", "recall", "f1")) + " |",
              f"| always '{metrics['majority_label']}' | " +
              " | ".join(number(metrics[f"baseline_{k}"]) for k in ("accuracy", "precision", "recall", "f1")) + " |",
              "", f"Confusion matrix (rows: teacher, columns: forest; {', '.join(metrics['labels'])}): "
                  f"`{metrics['confusion_matrix']}`", ""]
    if kept:
        lines += [f"Kept ({kept['rule']}): {number(kept['kept_documents'])} of {number(kept['documents'])} documents, "
                  f"{number(kept['kept_tokens'])} of {number(kept['tokens'])} tokens "
                  f"({pct(kept['kept_token_share'])}; the paper kept about 6B of 35B, 17%).", ""]
    if os.path.isfile(os.path.join(run, "filter", "scores.svg")):
        lines += ["![educational scores](filter/scores.svg)", ""]
    return lines


def section_training(run, done):
    lines, settings = [], read_json(os.path.join(run, "settings.json")) or {}
    # each stage's batch and block: run.sh records finetuning's own (older runs: the pretraining ones)
    for out, name, data, batch, block in (
            ("base", "phi-1-base: pretraining on CodeTextbook", "codetextbook", "batch", "block_size"),
            ("phi1", "phi-1: finetuning on CodeExercises", "codeexercises", "finetune_batch", "finetune_block")):
        lines.append(f"### {name}")
        log = train_log(os.path.join(run, out))
        if not log:
            lines += ["", f"{MISSING} (`{out}/log.jsonl`)", ""]
            continue
        seen = ""
        batch, block = settings.get(batch, settings.get("batch")), settings.get(block, settings.get("block_size"))
        if batch and block:
            tokens = log["iters"] * int(batch) * int(block)
            corpus = bin_counts(os.path.join(run, data))
            epochs = tokens / corpus["tokens"] if corpus else None
            seen = f" = {number(tokens)} tokens" + (f", {epochs:.2g} epochs" if epochs and epochs < 10 else
                                                     f", {epochs:,.0f} epochs" if epochs else "")
        lines += ["", f"{log['iters']} steps{seen}; last train loss {number(log['train_loss'])}, val loss "
                      f"{number(log['first_val_loss'])} -> {number(log['val_loss'])}; "
                      f"median {number(log['tokens_per_sec'])} tokens/s.", ""]
        if os.path.isfile(os.path.join(run, out, "loss.svg")):
            lines += [f"![{name}]({out}/loss.svg)", ""]
        else:
            lines += [f"picture {MISSING} (`{out}/loss.svg`)", ""]
    return lines


def section_benchmarks(run, done):
    lines = ["| model | HumanEval | MBPP | paper HumanEval | paper MBPP |", "|---|---:|---:|---:|---:|"]
    for model, name in MODELS.items():
        cells = []
        for task in TASKS:
            r = pass_at_1(run, model, task)
            cells.append(f"{pct(r[0])} of {r[1]}" if r else MISSING)
        paper = [pct(PAPER[(model, t)]) if (model, t) in PAPER else "not reported" for t in TASKS]
        lines.append(f"| {name} (this run) | {' | '.join(cells)} | {' | '.join(paper)} |")
    lines += ["", "The paper's models are 1.3B parameters trained on 7B tokens (Table 1); this run's size is "
                  "in the settings below."]
    # A model too small or too briefly trained to read the prompt writes the same text for every problem:
    # say so, since a 0% alone cannot tell that apart from a broken harness.
    distinct = [f"{name} {TASKS[t]} {c[0]} of {c[1]}" for m, name in MODELS.items() for t in TASKS
                if (c := distinct_completions(run, m, t))]
    if distinct:
        lines += ["", "Distinct completions (1 means the model ignores the prompt): " + "; ".join(distinct) + "."]
    # How the completions failed tells a model that writes wrong code (AssertionError) from one that writes
    # no code yet (SyntaxError).
    outcomes = []
    for m, name in MODELS.items():
        for t in TASKS:
            counts = (eval_report(run, m, t) or {}).get("results_count")
            if counts:
                top = sorted(counts.items(), key=lambda kv: -kv[1])
                outcomes.append(f"- {name} {TASKS[t]}: " +
                                ", ".join(f"{k.removeprefix('failed: ')} {v}" for k, v in top))
    if outcomes:
        lines += ["", "Outcomes of the completions:", ""] + outcomes
    return lines + [""]


def section_decontamination(run, done):
    lines = []
    for kind in ("textbooks", "exercises"):
        r = read_json(os.path.join(run, f"{kind}.contamination.json"))
        if not r:
            lines.append(f"- {kind}: {MISSING} (`{kind}.contamination.json`)")
            continue
        s = r.get("settings", {})
        lines.append(f"- {kind}: {r['rows']} rows, {r['removed']} removed, {r['kept']} kept; flagged by "
                     f"{r.get('flagged_by') or 'nothing'} ({s.get('ngram')}-gram overlap, AST match rate >= "
                     f"{s.get('tau')}, against {', '.join(s.get('tasks', []))})")
        for f in r.get("flagged", [])[:5]:
            lines.append(f"  - row {f['row']} ({f.get('id')}): {f['method']} ~ {f['task_id']}, score {f['score']}")
    return lines + [""]


def hardware():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch  # here: the rest of the report needs no torch
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores", f"- GPU: {', '.join(gpus) if gpus else 'none'}",
            f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.platform()}"]


def section_time(run, done):
    lines = ["| step | time (of the run that finished it) | produced |", "|---|---:|---|"]
    for step in STEPS:
        m = done.get(step)
        lines.append(f"| {step} | {duration(m['seconds']) if m else MISSING} | "
                     f"{one_line(m).rsplit(';', 1)[0] if m else 'not finished'} |")
    total = sum(m["seconds"] for m in done.values())
    lines += [f"| **total** | **{duration(total)}** | |", ""] + hardware()
    settings = read_json(os.path.join(run, "settings.json"))
    if settings:
        lines += ["", "Settings (of the last run.sh): " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    return lines + [""]


def headline(run, done):
    scores = [f"{name} {TASKS[t]} {pct(r[0])}" for m, name in MODELS.items() for t in TASKS if (r := pass_at_1(run, m, t))]
    return [f"pass@1: {'; '.join(scores) or MISSING}. Steps done: {len(done)} of {len(STEPS)}, "
            f"{duration(sum(m['seconds'] for m in done.values()))}.", ""]


SECTIONS = [("Data funnel", section_funnel), ("Forest (held-out)", section_forest),
            ("Training curves", section_training), ("HumanEval and MBPP (pass@1, greedy)", section_benchmarks),
            ("Decontamination (paper section 5)", section_decontamination),
            ("Time per step and hardware", section_time)]


def write_report(run):
    """RUN/report.md. A section whose files are there but not as expected says so; the others still appear."""
    done = markers(run)
    lines = [f"# phi-1 recipe: report of `{run}`", "",
             f"Written {datetime.datetime.now().isoformat(timespec='seconds')} by `python report.py {run}`.", ""]
    lines += headline(run, done)
    for title, section in SECTIONS:
        try:
            body = section(run, done)
        except Exception as e:  # an artifact from another version of a script: report it, write the rest
            body = [f"unreadable: {type(e).__name__}: {e}", ""]
        lines += [f"## {title}", ""] + body
    path = os.path.join(run, "report.md")
    with atomic_write(path, encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("run", help="run directory (run.sh's RUN_DIR)")
    parser.add_argument("--step", choices=STEPS, help="record this step as finished (run.sh)")
    parser.add_argument("--seconds", type=float, default=0.0, help="wall time of --step")
    parser.add_argument("--show", choices=STEPS, help="print what a finished step produced")
    parser.add_argument("--settings", nargs="+", metavar="KEY=VALUE", help="record the run's settings (run.sh)")
    args = parser.parse_args(argv)
    if not (args.settings or args.step or os.path.isdir(args.run)):
        parser.error(f"{args.run}: no such run directory (run.sh makes it)")
    if args.settings:
        os.makedirs(args.run, exist_ok=True)
        with atomic_write(os.path.join(args.run, "settings.json")) as f:
            json.dump(dict(s.split("=", 1) for s in args.settings), f, indent=1)
    elif args.step:
        record_step(args.run, args.step, args.seconds)
    elif args.show:
        marker = markers(args.run).get(args.show)
        print(one_line(marker) if marker else MISSING)
    else:
        print(write_report(args.run))


if __name__ == "__main__":
    sys.exit(main())
