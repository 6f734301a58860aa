"""
report.py: RUN_DIR/report.md, one page on a run.sh run, read from the files its steps left behind.

    python report.py runs/cpu                             # write runs/cpu/report.md
    python report.py runs/cpu --step pretrain --seconds 812.4   # run.sh, after a step succeeded
    python report.py runs/cpu --show train-base           # one line: what a finished step produced
    python report.py runs/cpu --choose phi1               # the checkpoint of an arm to evaluate (run.sh)

The --step form is run.sh's bookkeeping: it writes RUN_DIR/.done/STEP.json, the step's wall time and
what it produced (documents, tokens, losses, scores), and prints that as one line. The file is both the
step's done-marker and a row of the report's timing table. Every artifact is optional: a missing one
reads "missing", so the report of a half-finished run still shows how far it got.

The run directory, as run.sh lays it out:
    raw/                    prepare.py: the raw code corpus as token bins (meta.json counts it)
    annotations.jsonl       filter.py annotate: the teacher's labels of a sample
    filter/                 filter.py: the forest, its held-out metrics, kept.jsonl (the filtered code)
    textbooks.jsonl, exercises.jsonl (+ .report.json)             synth.py
    textbooks.clean.jsonl, exercises.clean.jsonl (+ .contamination.json)   decontaminate.py
    filtered/, codetextbook/, codeexercises/      prepare.py: the arms' training bins (raw/ is the raw arm's)
    arms/ARM/               train.py out_dirs (raw, filtered, base, phi1): checkpoints, log.jsonl, loss.svg, and
                            chosen.json, the checkpoint evaluated (lowest validation loss) and why
    eval/ARM-TASK.json      evaluate.py reports: pass@1 and the reference solutions' log-loss
    ablation.svg            the arms side by side, beside the paper's
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import sys

import ablation
from ablation import ARMS, TASKS
from prepare import atomic_write, duration, get_tokenizer, iter_jsonl

DATA = {"raw": "raw", "filtered": "filtered", "base": "codetextbook", "phi1": "codeexercises"}  # training bins
STEPS = ["raw", "annotate", "filter", "textbooks", "exercises", "decontaminate", "bins"] + \
        [f"train-{arm}" for arm in ARMS] + ["evaluate"]
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


def settings_of(run):
    return read_json(os.path.join(run, "settings.json")) or {}


def arms_of(run):
    """The arms this run trains (settings.json; an older run without the setting had base and phi1)."""
    return [a for a in ARMS if a in settings_of(run).get("arms", "base phi1").split()]


def tokens_seen(run, arm):
    """Training tokens behind the arm's evaluated checkpoint: its steps x batch x block, plus base's for phi1."""
    chosen, settings = read_json(os.path.join(run, "arms", arm, "chosen.json")), settings_of(run)
    if not chosen or chosen.get("iter") is None:
        return None
    batch, block = (settings.get("finetune_batch"), settings.get("finetune_block")) if arm == "phi1" else \
        (settings.get("batch"), settings.get("block_size"))
    if not (batch and block):
        return None
    tokens = chosen["iter"] * int(batch) * int(block)
    return tokens + (tokens_seen(run, "base") or 0) if arm == "phi1" else tokens


def forest_metrics(run):
    """The forest's held-out metrics (filter.py train) and what it kept (filter.py keep)."""
    return read_json(os.path.join(run, "filter", "metrics.json")), read_json(os.path.join(run, "filter", "keep.json"))


def choose_checkpoint(out_dir, fixed=None):
    """The checkpoint of a train.py out_dir to evaluate: the one of lowest validation loss among those kept, as the
    paper chose among its finetuning checkpoints (section 2.3), never by a benchmark score; `fixed` names one chosen
    for a fixed reason instead (the paper's phi-1-base is its 24,000-step checkpoint). Writes OUT/chosen.json with
    the candidates and the reason, and returns the chosen file's path."""
    log = [r for r in iter_jsonl(os.path.join(out_dir, "log.jsonl"))] if os.path.isfile(os.path.join(out_dir, "log.jsonl")) else []
    val = {r["iter"]: r["val_loss"] for r in log if r.get("val_loss") is not None}
    files = {int(m.group(1)): name for name in sorted(os.listdir(out_dir)) if (m := re.fullmatch(r"ckpt_(\d+)\.pt", name))}
    if log and os.path.isfile(os.path.join(out_dir, "ckpt.pt")):
        files.setdefault(max(r["iter"] for r in log), "ckpt.pt")  # train.py always saves ckpt.pt at its last step
    candidates = [{"ckpt": name, "iter": it, "val_loss": val.get(it)} for it, name in sorted(files.items())]
    scored = [c for c in candidates if c["val_loss"] is not None]
    if fixed:
        chosen = next((c for c in candidates if c["ckpt"] == fixed), {"ckpt": fixed, "iter": None, "val_loss": None})
        why = "fixed by the paper, not chosen by validation loss"
    elif not scored:
        chosen = {"ckpt": "ckpt.pt", "iter": max(files, default=None), "val_loss": None}
        why = "the last checkpoint: no validation loss was logged at any checkpoint"
    else:  # the lowest loss; of equal ones the latest
        chosen = min(scored, key=lambda c: (c["val_loss"], -c["iter"]))
        why = (f"the only checkpoint, validation loss {chosen['val_loss']:.4f}" if len(scored) == 1 else
               f"the lowest validation loss ({chosen['val_loss']:.4f}) of {len(scored)} checkpoints, at steps "
               + ", ".join(f"{c['iter']} ({c['val_loss']:.4f})" for c in scored))
    with atomic_write(os.path.join(out_dir, "chosen.json")) as f:
        json.dump({**chosen, "why": why, "candidates": candidates}, f, indent=1)
    return os.path.join(out_dir, chosen["ckpt"])


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
        return {f"{d}_tokens": c["tokens"] for d in ("filtered", "codetextbook", "codeexercises")
                if (c := bin_counts(p(d)))} or None
    if step.startswith("train-"):
        log = train_log(p("arms", step.removeprefix("train-")))
        return log and {k: v for k, v in log.items() if k in ("iters", "train_loss", "val_loss") and v is not None}
    if step == "evaluate":
        return {f"{a}_{t}_{k}": r[k] for a in ARMS for t in TASKS if (r := eval_report(run, a, t))
                for k in ("pass@1", "solution_loss") if k in r} or None
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


def section_ablation(run, done):
    """The arms compared (ablation.py): the table, the chart, and a sentence per comparison."""
    arms = arms_of(run)
    results = {a: {t: r for t in TASKS if (r := eval_report(run, a, t))} for a in arms}
    lines = ablation.section(run, arms, {a: r for a, r in results.items() if r}, {a: tokens_seen(run, a) for a in arms},
                             settings_of(run).get("scale"))
    metrics, _ = forest_metrics(run)
    if metrics and metrics.get("verdict") and {"filtered", "base", "phi1"} & set(arms):
        # what the filter behind filtered and base is worth, so that no one reads more into those arms than it allows
        lines[-1:-1] = [f"- The filter behind the filtered and base arms (Forest section). {metrics['verdict'][-1]}"]
    return lines


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
        lines.append(annotation_labels(list(iter_jsonl(path))))
    for kind in ("textbooks", "exercises"):
        lines += synth_lines(kind, read_json(os.path.join(run, f"{kind}.jsonl.report.json")))
    return lines if lines[-1] == "" else lines + [""]


def annotation_labels(rows):
    """One line: the labels of the sample, where they come from, and how many anchor files were judged."""
    sample, anchors = [r for r in rows if not r.get("anchor")], [r for r in rows if r.get("anchor")]
    labels = collections.Counter(str(r.get("label")) for r in sample)
    line = "The teacher's labels: " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
    ranked = sorted({r["label_from"] for r in sample if r.get("label_from")})
    if ranked:
        line += (f", by rank of teacher_score (P(high) from the log-probabilities of its one-token answer, both "
                 f"orders of the options): {'; '.join(ranked)}")
    if "None" in labels:
        line += " (None: no clear label in the answer, or no score; left out of the forest's training)"
    if anchors:
        line += (f". {len(anchors)} of the annotated files are anchor files, judged as a check of the teacher (below) "
                 f"and never trained on")
    return line + "."


def auc_cell(check):
    if not check:
        return MISSING
    return f"{check['auc']:.2f} ({check['ci95'][0]:.2f}-{check['ci95'][1]:.2f}) | {check['positives']} / {check['negatives']}"


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
    embed = metrics.get("embed", {})
    features = {"ngram": "hashed token n-grams (no pretrained model)",
                "teacher": f"the teacher's embeddings ({embed.get('model')} at {embed.get('api_base')})",
                "model": f"a pretrained model's mean hidden states (`{embed.get('ckpt')}`)"}.get(embed.get("embed"), "?")
    lines = [f"{metrics['train_documents']} annotated documents to fit, {metrics['test_documents']} held out; "
             f"features: {features}.", "",
             "| | accuracy | precision | recall | F1 |", "|---|---:|---:|---:|---:|",
             "| forest | " + " | ".join(number(metrics[k]) for k in ("accuracy", "precision", "recall", "f1")) + " |",
             f"| always '{metrics['majority_label']}' | " +
             " | ".join(number(metrics[f"baseline_{k}"]) for k in ("accuracy", "precision", "recall", "f1")) + " |",
             "", f"Confusion matrix (rows: teacher, columns: forest; {', '.join(metrics['labels'])}): "
                 f"`{metrics['confusion_matrix']}`", ""]
    if "teacher_anchor_auc" in metrics:
        lines += ["Does it mean anything? AUC: the chance that a positive scores above a negative (0.5: a coin "
                  "toss), with a bootstrap 95% interval. Anchor files: clear-cut lesson-like and data-like files of "
                  "the standard library (`anchors.py`), never trained on.", "",
                  "| check | AUC (95% CI) | positives / negatives |", "|---|---|---|",
                  f"| the teacher's score: lesson-like above data-like anchor files? | "
                  f"{auc_cell(metrics['teacher_anchor_auc'])} |",
                  f"| the forest on held-out annotations: high above low? | {auc_cell(metrics['forest_auc'])} |",
                  f"| the forest's score: lesson-like above data-like anchor files? | "
                  f"{auc_cell(metrics['forest_anchor_auc'])} |", "",
                  *[f"- {line}" for line in metrics["verdict"]], ""]
    if kept:
        lines += [f"Kept ({kept['rule']}): {number(kept['kept_documents'])} of {number(kept['documents'])} documents, "
                  f"{number(kept['kept_tokens'])} of {number(kept['tokens'])} tokens "
                  f"({pct(kept['kept_token_share'])}; the paper kept about 6B of 35B, 17%).", ""]
    if os.path.isfile(os.path.join(run, "filter", "scores.svg")):
        lines += ["![educational scores](filter/scores.svg)", ""]
    return lines


def section_training(run, done):
    lines, settings = [], settings_of(run)
    for arm in arms_of(run):
        lines.append(f"### {arm}: {ARMS[arm]}, trained on `{DATA[arm]}/`")
        log = train_log(os.path.join(run, "arms", arm))
        if not log:
            lines += ["", f"{MISSING} (`arms/{arm}/log.jsonl`)", ""]
            continue
        batch, block = (settings.get("finetune_batch"), settings.get("finetune_block")) if arm == "phi1" else \
            (settings.get("batch"), settings.get("block_size"))
        seen = ""
        if batch and block:
            tokens = log["iters"] * int(batch) * int(block)
            corpus = bin_counts(os.path.join(run, DATA[arm]))
            epochs = tokens / corpus["tokens"] if corpus else None
            seen = f" = {number(tokens)} tokens" + (f", {epochs:.2g} epochs" if epochs and epochs < 10 else
                                                     f", {epochs:,.0f} epochs" if epochs else "")
        lines += ["", f"{log['iters']} steps{seen}; last train loss {number(log['train_loss'])}, val loss "
                      f"{number(log['first_val_loss'])} -> {number(log['val_loss'])}; "
                      f"median {number(log['tokens_per_sec'])} tokens/s.", ""]
        chosen = read_json(os.path.join(run, "arms", arm, "chosen.json"))
        if chosen:
            lines += [f"Evaluated: `{chosen['ckpt']}`, {chosen['why']}.", ""]
        if os.path.isfile(os.path.join(run, "arms", arm, "loss.svg")):
            lines += [f"![{arm}](arms/{arm}/loss.svg)", ""]
        else:
            lines += [f"picture {MISSING} (`arms/{arm}/loss.svg`)", ""]
    return lines


def section_benchmarks(run, done):
    lines = ["| arm | HumanEval | MBPP | paper HumanEval | paper MBPP |", "|---|---:|---:|---:|---:|"]
    for arm in arms_of(run):
        cells = []
        for task in TASKS:
            r = pass_at_1(run, arm, task)
            cells.append(f"{pct(r[0])} of {r[1]}" if r else MISSING)
        paper = [pct(PAPER[(arm, t)]) if (arm, t) in PAPER else "not reported" for t in TASKS]
        lines.append(f"| {arm}: {ARMS[arm]} | {' | '.join(cells)} | {' | '.join(paper)} |")
    lines += ["", "The paper's models are 1.3B parameters trained on 7B tokens (Table 1); this run's size is "
                  "in the settings below."]
    # A model too small or too briefly trained to read the prompt writes the same text for every problem:
    # say so, since a 0% alone cannot tell that apart from a broken harness.
    distinct = [f"{arm} {TASKS[t]} {c[0]} of {c[1]}" for arm in arms_of(run) for t in TASKS
                if (c := distinct_completions(run, arm, t))]
    if distinct:
        lines += ["", "Distinct completions (1 means the model ignores the prompt): " + "; ".join(distinct) + "."]
    # How the completions failed tells a model that writes wrong code (AssertionError) from one that writes
    # no code yet (SyntaxError).
    outcomes = []
    for arm in arms_of(run):
        for t in TASKS:
            counts = (eval_report(run, arm, t) or {}).get("results_count")
            if counts:
                top = sorted(counts.items(), key=lambda kv: -kv[1])
                outcomes.append(f"- {arm} {TASKS[t]}: " +
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


def steps_of(run):
    """The steps run.sh runs for this run's arms (its `wanted`): the teacher's steps serve only the arms built on
    the filter."""
    needed_by = {"annotate": {"filtered", "base", "phi1"}, "filter": {"filtered", "base", "phi1"},
                 "textbooks": {"base", "phi1"}, "decontaminate": {"base", "phi1"}, "exercises": {"phi1"},
                 **{f"train-{arm}": {arm} for arm in ARMS}}
    arms = set(arms_of(run))
    return [s for s in STEPS if s not in needed_by or needed_by[s] & arms]


def section_time(run, done):
    lines = ["| step | time (of the run that finished it) | produced |", "|---|---:|---|"]
    for step in steps_of(run):
        m = done.get(step)
        lines.append(f"| {step} | {duration(m['seconds']) if m else MISSING} | "
                     f"{one_line(m).rsplit(';', 1)[0] if m else 'not finished'} |")
    total = sum(m["seconds"] for m in done.values())
    lines += [f"| **total** | **{duration(total)}** | |", ""] + hardware()
    settings = settings_of(run)
    if settings:
        lines += ["", "Settings (of the last run.sh): " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    return lines + [""]


def headline(run, done):
    steps = steps_of(run)
    return [f"Arms: {', '.join(f'{a} ({ARMS[a]})' for a in arms_of(run))}. Steps done: "
            f"{sum(s in done for s in steps)} of {len(steps)}, {duration(sum(m['seconds'] for m in done.values()))}.", ""]


SECTIONS = [("The experiment: the same student on different data", section_ablation),
            ("Data funnel", section_funnel), ("Forest (held-out)", section_forest),
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
    parser.add_argument("--choose", choices=ARMS, metavar="ARM",
                        help="print the checkpoint of ARM to evaluate, and write arms/ARM/chosen.json (run.sh)")
    parser.add_argument("--fixed", metavar="FILE", help="with --choose: this checkpoint of the arm, for a fixed reason")
    args = parser.parse_args(argv)
    if not (args.settings or args.step or os.path.isdir(args.run)):
        parser.error(f"{args.run}: no such run directory (run.sh makes it)")
    if args.settings:
        os.makedirs(args.run, exist_ok=True)
        with atomic_write(os.path.join(args.run, "settings.json")) as f:
            json.dump(dict(s.split("=", 1) for s in args.settings), f, indent=1)
    elif args.step:
        record_step(args.run, args.step, args.seconds)
    elif args.choose:
        print(choose_checkpoint(os.path.join(args.run, "arms", args.choose), args.fixed))
    elif args.show:
        marker = markers(args.run).get(args.show)
        print(one_line(marker) if marker else MISSING)
    else:
        print(write_report(args.run))


if __name__ == "__main__":
    sys.exit(main())
